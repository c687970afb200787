// streamscore status page: scrapes /metrics and /fleet every 2 s and draws what it finds.
// This member's totals come from /metrics; its last minute (rate, latency), its swaps and the
// whole group (every member's status record) from /fleet.
"use strict";

const REFRESH_MS = 2000;
const HISTORY = 60;

function parseMetrics(text) {
  // -> [{name, labels: {...}, value}]
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const part of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[part[1]] = part[2];
      }
    }
    out.push({ name: m[1], labels, value: parseFloat(m[4]) });
  }
  return out;
}

function sum(samples, name, filter) {
  return samples
    .filter((s) => s.name === name && (!filter || filter(s.labels)))
    .reduce((acc, s) => acc + s.value, 0);
}

function quantile(samples, name, q) {
  // Histogram quantile (linear within the bucket), like PromQL's histogram_quantile.
  const buckets = {};
  for (const s of samples) {
    if (s.name !== name + "_bucket") continue;
    const le = s.labels.le === "+Inf" ? Infinity : parseFloat(s.labels.le);
    buckets[le] = (buckets[le] || 0) + s.value;
  }
  const bounds = Object.keys(buckets).map(Number).sort((a, b) => a - b);
  if (!bounds.length) return null;
  const total = buckets[Infinity] || buckets[bounds[bounds.length - 1]];
  if (!total) return null;
  const rank = q * total;
  let prevBound = 0, prevCount = 0;
  for (const b of bounds) {
    const c = buckets[b];
    if (c >= rank) {
      if (b === Infinity) return prevBound;
      return prevBound + (b - prevBound) * ((rank - prevCount) / Math.max(c - prevCount, 1e-9));
    }
    prevBound = b; prevCount = c;
  }
  return prevBound;
}

function summarize(samples) {
  const info = samples.find((s) => s.name === "streamscore_model_info" && s.value === 1);
  const byStage = {};
  for (const s of samples) {
    if (s.name === "streamscore_dead_letters_total") {
      byStage[s.labels.stage] = (byStage[s.labels.stage] || 0) + s.value;
    }
  }
  const predictions = {};
  for (const s of samples) {
    if (s.name === "streamscore_predictions_total") {
      predictions[s.labels.label] = (predictions[s.labels.label] || 0) + s.value;
    }
  }
  const batchCount = sum(samples, "streamscore_batch_size_count");
  const p50 = quantile(samples, "streamscore_end_to_end_seconds", 0.5);
  const p99 = quantile(samples, "streamscore_end_to_end_seconds", 0.99);
  return {
    version: info ? info.labels.version : null,
    alias: info ? info.labels.alias : null,
    name: info ? info.labels.name : null,
    scored: sum(samples, "streamscore_events_scored_total"),
    dead: Object.values(byStage).reduce((a, b) => a + b, 0),
    byStage,
    predictions,
    lag: sum(samples, "streamscore_consumer_lag"),
    batchMean: batchCount ? sum(samples, "streamscore_batch_size_sum") / batchCount : null,
    p50ms: p50 === null ? null : p50 * 1000,
    p99ms: p99 === null ? null : p99 * 1000,
  };
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// Vertical lines where the serving version changed: chart.$swaps = [{index, text}].
const swapMarkers = {
  id: "swapMarkers",
  afterDatasetsDraw(chart) {
    const marks = chart.$swaps || [];
    if (!marks.length) return;
    const { ctx, chartArea, scales } = chart;
    ctx.save();
    ctx.strokeStyle = "#8250df";
    ctx.fillStyle = "#8250df";
    ctx.setLineDash([4, 3]);
    ctx.font = "11px system-ui, sans-serif";
    for (const mark of marks) {
      const x = scales.x.getPixelForValue(mark.index);
      ctx.beginPath();
      ctx.moveTo(x, chartArea.top);
      ctx.lineTo(x, chartArea.bottom);
      ctx.stroke();
      ctx.fillText(mark.text, x + 3, chartArea.top + 10);
    }
    ctx.restore();
  },
};

function lineChart(id, labels) {
  return new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: [], datasets: labels.map((label) => ({ label, data: [], tension: 0.2, pointRadius: 0 })) },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    plugins: [swapMarkers],
  });
}

function barChart(id) {
  return new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels: [], datasets: [{ label: "events", data: [] }] },
    options: { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } },
  });
}

const charts = {
  throughput: lineChart("chart-throughput", ["events/s"]),
  latency: lineChart("chart-latency", ["p50", "p99"]),
  predictions: barChart("chart-predictions"),
  dead: barChart("chart-dead"),
};

const pointTimes = []; // epoch seconds of each point of the line charts

function push(chart, label, values) {
  chart.data.labels.push(label);
  values.forEach((v, i) => chart.data.datasets[i].data.push(v));
  if (chart.data.labels.length > HISTORY) {
    chart.data.labels.shift();
    chart.data.datasets.forEach((d) => d.data.shift());
  }
}

function markSwaps(swaps) {
  // Each swap goes on the first point at or after it (the poll that saw it).
  const marks = [];
  for (const swap of swaps) {
    if (swap.from === null || swap.from === undefined) continue; // the first load, not a swap
    const index = pointTimes.findIndex((t) => t >= swap.at);
    if (index >= 0) marks.push({ index, text: `v${swap.from} → v${swap.to}` });
  }
  for (const chart of [charts.throughput, charts.latency]) {
    chart.$swaps = marks;
    chart.update();
  }
  const shown = swaps.filter((s) => s.from !== null && s.from !== undefined);
  document.getElementById("swaps").textContent = shown.length
    ? "swapped " + shown.map((s) => `v${s.from} → v${s.to} at ${new Date(s.at * 1000).toLocaleTimeString()}`).join(", ")
    : "";
  document.body.dataset.swapMarkers = String(marks.length);
}

function showEmpty(id, empty) {
  document.getElementById(id).hidden = !empty;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function servingText(record) {
  const serving = record.serving || {};
  const parts = Object.entries(serving).map(([alias, v]) => `${record.model} v${v} (${alias})`);
  // a shadow scores beside production (shadow topic only): its agreement with production
  const shadow = (record.candidates || {}).shadow;
  if (shadow && shadow.version != null) {
    const agree = shadow.agreement != null ? `, agreement ${(100 * shadow.agreement).toFixed(1)} %` : "";
    const mae = shadow.mae != null ? `, MAE between the two ${fmt(shadow.mae, 4)}` : "";
    parts.push(`shadow v${shadow.version} (${shadow.alias}${agree}${mae})`);
  }
  return parts.join(", ") || "nothing";
}

function partitionsText(names) {
  return (names || []).map((n) => n.slice(n.lastIndexOf("[") + 1, -1)).join(", ") || "–";
}

function sumValues(mapping) {
  return Object.values(mapping || {}).reduce((a, b) => a + b, 0);
}

function drawFleet(fleet) {
  document.getElementById("fleet-group").textContent = fleet.group;
  const total = fleet.total;
  document.getElementById("fleet-summary").textContent =
    `${total.ready} of ${fleet.members.length} members ready`;
  const rows = document.getElementById("fleet-rows");
  rows.replaceChildren();
  for (const m of fleet.members) {
    const tr = el("tr");
    tr.dataset.worker = m.worker;
    tr.append(
      el("td", `${m.worker}${m.worker === fleet.self.worker ? " (this page)" : ""}`),
      el("td", m.state === "gone" ? `gone (${Math.round(m.age_s)} s silent)` : m.state, `state-${m.state}`),
      el("td", servingText(m)),
      el("td", partitionsText(m.partitions)),
      el("td", fmt(m.events_per_s, 1), "num"),
      el("td", fmt(m.p99_ms, 1), "num"),
      el("td", fmt(sumValues(m.lag)), "num"),
      el("td", fmt(sumValues(m.dead_letters_by_stage)), "num"),
    );
    rows.append(tr);
  }
  if (!fleet.members.length) {
    const tr = el("tr");
    const td = el("td", "no member has reported yet", "empty");
    td.colSpan = 8;
    tr.append(td);
    rows.append(tr);
  }
  const foot = document.getElementById("fleet-total");
  foot.replaceChildren(
    el("th", "all"),
    el("td", `${total.members} live`),
    el("td", (total.serving || []).join(", ") || "–"),
    el("td", String(total.partitions)),
    el("td", fmt(total.events_per_s, 1), "num"),
    el("td", fmt(total.p99_ms, 1), "num"),
    el("td", fmt(total.lag), "num"),
    el("td", fmt(total.dead_letters), "num"),
  );
}

function drawLag(lag) {
  const rows = document.getElementById("lag-rows");
  rows.replaceChildren();
  const names = Object.keys(lag || {}).sort();
  for (const name of names) {
    const tr = el("tr");
    tr.append(el("td", name), el("td", fmt(lag[name]), "num"));
    rows.append(tr);
  }
  if (!names.length) {
    const tr = el("tr");
    const td = el("td", "no partitions assigned yet", "empty");
    td.colSpan = 2;
    tr.append(td);
    rows.append(tr);
  }
}

function drawDeadLetters(fleet) {
  const all = [];
  for (const m of fleet.members) {
    for (const d of m.recent_dead_letters || []) all.push({ ...d, worker: m.worker });
  }
  all.sort((a, b) => b.at - a.at);
  const list = document.getElementById("dead-list");
  list.replaceChildren();
  for (const d of all.slice(0, 20)) {
    const li = el("li");
    li.append(
      el("span", new Date(d.at * 1000).toLocaleTimeString() + " "),
      el("span", d.stage, "stage"),
      el("span", ` ${d.error_class}: ${d.reason} `),
      el("span", `(${d.source}, ${d.worker})`, "empty"),
    );
    list.append(li);
  }
  if (!all.length) list.append(el("li", "no dead letters yet", "empty"));
}

function classLabels(predictions, classes) {
  // Bars in the manifest's class order, named as the manifest names them.
  const keys = (classes || []).map(String).filter((c) => c in predictions);
  for (const k of Object.keys(predictions).sort()) if (!keys.includes(k)) keys.push(k);
  const out = {};
  for (const k of keys) out[k] = predictions[k];
  return out;
}

function setBars(chart, mapping, ordered) {
  const keys = ordered ? Object.keys(mapping) : Object.keys(mapping).sort();
  chart.data.labels = keys;
  chart.data.datasets[0].data = keys.map((k) => mapping[k]);
  chart.update();
}

async function refresh() {
  const now = Date.now();
  try {
    const [metricsText, fleet, ready] = await Promise.all([
      fetch("/metrics").then((r) => r.text()),
      fetch("/fleet").then((r) => r.json()),
      fetch("/readyz").then((r) => r.status === 200),
    ]);
    const m = summarize(parseMetrics(metricsText));
    const own = fleet.self;
    const rate = own.events_per_s; // over the last minute (since start when younger): no wait
    document.getElementById("worker-id").textContent = own.worker;
    document.getElementById("model-version").textContent = m.version ? `${m.name} v${m.version}` : "none";
    document.getElementById("model-alias").textContent = m.alias || "–";
    document.getElementById("ready").textContent = ready ? "yes" : "no";
    document.getElementById("throughput").textContent = fmt(rate);
    document.getElementById("scored-total").textContent = fmt(m.scored);
    document.getElementById("dead-total").textContent = fmt(m.dead);
    document.getElementById("latency-p50").textContent = fmt(own.p50_ms, 1);
    document.getElementById("latency-p99").textContent = fmt(own.p99_ms, 1);
    document.getElementById("batch-mean").textContent = fmt(m.batchMean, 1);
    document.getElementById("lag-total").textContent = fmt(m.lag);
    document.getElementById("updated").textContent = new Date(now).toLocaleTimeString();
    const t = new Date(now).toLocaleTimeString();
    pointTimes.push(now / 1000);
    if (pointTimes.length > HISTORY) pointTimes.shift();
    push(charts.throughput, t, [rate || 0]);
    push(charts.latency, t, [own.p50_ms || 0, own.p99_ms || 0]);
    markSwaps(own.swaps || []);
    setBars(charts.predictions, classLabels(m.predictions, fleet.classes), true);
    setBars(charts.dead, m.byStage);
    showEmpty("throughput-empty", !own.events && !m.scored);
    showEmpty("latency-empty", own.p99_ms === null);
    showEmpty("predictions-empty", !Object.keys(m.predictions).length);
    showEmpty("dead-empty", !m.dead);
    drawFleet(fleet);
    drawQuality(fleet); // quality.js: live quality per version (the monitor's records)
    drawLag(own.lag);
    drawDeadLetters(fleet);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (err) {
    document.getElementById("updated").textContent = "error: " + err;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
