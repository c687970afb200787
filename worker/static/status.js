// streamscore status page: scrapes /metrics every 2 s and draws what it finds.
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

function lineChart(id, labels) {
  return new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: [], datasets: labels.map((label) => ({ label, data: [], tension: 0.2, pointRadius: 0 })) },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
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

let previous = null;

function push(chart, label, values) {
  chart.data.labels.push(label);
  values.forEach((v, i) => chart.data.datasets[i].data.push(v));
  if (chart.data.labels.length > HISTORY) {
    chart.data.labels.shift();
    chart.data.datasets.forEach((d) => d.data.shift());
  }
  chart.update();
}

function setBars(chart, mapping) {
  const keys = Object.keys(mapping).sort();
  chart.data.labels = keys;
  chart.data.datasets[0].data = keys.map((k) => mapping[k]);
  chart.update();
}

async function refresh() {
  const now = Date.now();
  try {
    const [metricsText, status, ready] = await Promise.all([
      fetch("/metrics").then((r) => r.text()),
      fetch("/status").then((r) => r.json()),
      fetch("/readyz").then((r) => r.status === 200),
    ]);
    const m = summarize(parseMetrics(metricsText));
    let rate = null;
    if (previous) {
      rate = Math.max(m.scored + m.dead - previous.total, 0) / ((now - previous.at) / 1000);
    }
    previous = { at: now, total: m.scored + m.dead };
    document.getElementById("worker-id").textContent = status.worker;
    document.getElementById("model-version").textContent = m.version ? `${m.name} v${m.version}` : "none";
    document.getElementById("model-alias").textContent = m.alias || "–";
    document.getElementById("ready").textContent = ready ? "yes" : "no";
    document.getElementById("throughput").textContent = fmt(rate);
    document.getElementById("scored-total").textContent = fmt(m.scored);
    document.getElementById("dead-total").textContent = fmt(m.dead);
    document.getElementById("latency-p50").textContent = fmt(m.p50ms, 1);
    document.getElementById("latency-p99").textContent = fmt(m.p99ms, 1);
    document.getElementById("batch-mean").textContent = fmt(m.batchMean, 1);
    document.getElementById("lag-total").textContent = fmt(m.lag);
    document.getElementById("updated").textContent = new Date(now).toLocaleTimeString();
    const t = new Date(now).toLocaleTimeString();
    push(charts.throughput, t, [rate || 0]);
    push(charts.latency, t, [m.p50ms || 0, m.p99ms || 0]);
    setBars(charts.predictions, m.predictions);
    setBars(charts.dead, m.byStage);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (err) {
    document.getElementById("updated").textContent = "error: " + err;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
