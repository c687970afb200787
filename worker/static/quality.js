// streamscore status page: live quality per model version (issue 16), its own section.
// Reads the "quality" part of /fleet (the monitor's records on [kafka] quality_topic, kept by
// the worker: worker/live_quality.py) and draws one row per version: held-out (manifest) next
// to live (cumulative) and the latest closed window. status.js calls drawQuality(fleet).
"use strict";

// Per task, the metrics shown (held-out / live / window) and their titles.
const QUALITY_METRICS = {
  classification: [["accuracy", "accuracy"], ["log_loss", "log loss"], ["roc_auc", "ROC AUC"]],
  regression: [["mae", "MAE"], ["rmse", "RMSE"]],
};

function qualityValue(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

function qualityTask(versions) {
  for (const v of Object.values(versions)) {
    const metrics = { ...v.held_out, ...v.live };
    if ("accuracy" in metrics || "log_loss" in metrics) return "classification";
    if ("mae" in metrics || "rmse" in metrics) return "regression";
  }
  return "classification";
}

function qualityCell(tag, text, cls) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function drawQuality(fleet) {
  const quality = fleet.quality || { versions: {}, last_decision: null };
  const versions = quality.versions || {};
  const metrics = QUALITY_METRICS[qualityTask(versions)];
  const serving = new Set(((fleet.total || {}).serving || []).map((s) => s.split(" v").pop()));
  const head = document.getElementById("quality-head");
  head.replaceChildren(qualityCell("th", "version"), qualityCell("th", "labelled", "num"),
    qualityCell("th", "coverage", "num"));
  for (const [, title] of metrics) {
    head.append(qualityCell("th", `${title} held-out`, "num"), qualityCell("th", `${title} live`, "num"),
      qualityCell("th", `${title} window`, "num"));
  }
  const rows = document.getElementById("quality-rows");
  rows.replaceChildren();
  const numbers = Object.keys(versions).sort((a, b) => Number(a) - Number(b));
  for (const version of numbers) {
    const v = versions[version];
    const live = v.live || {};
    const windowMetrics = (v.window || {}).metrics || {};
    const tr = document.createElement("tr");
    tr.dataset.version = version;
    tr.append(
      qualityCell("td", `v${version}${serving.has(version) ? " (serving)" : ""}`),
      qualityCell("td", `${(live.labelled || 0).toLocaleString("en-US")} of ${(live.predictions || 0).toLocaleString("en-US")}`, "num"),
      qualityCell("td", live.coverage === null || live.coverage === undefined ? "–" : `${(100 * live.coverage).toFixed(0)} %`, "num"),
    );
    for (const [name] of metrics) {
      tr.append(qualityCell("td", qualityValue((v.held_out || {})[name]), "num"),
        qualityCell("td", qualityValue(live[name]), "num"),
        qualityCell("td", qualityValue(windowMetrics[name]), "num"));
    }
    rows.append(tr);
  }
  if (!numbers.length) {
    const tr = document.createElement("tr");
    const td = qualityCell("td", "no live quality yet: `streamscore monitor` publishes it once labels arrive", "empty");
    td.colSpan = 3 + 3 * metrics.length;
    tr.append(td);
    rows.append(tr);
  }
  const d = quality.last_decision;
  document.getElementById("quality-decision").textContent = d
    ? `last decision of the monitor: ${d.action} v${d.version}${d.target ? " → v" + d.target : ""} at ${new Date(d.at).toLocaleTimeString()}: ${d.reason}`
    : "no rollback decision published yet";
  document.body.dataset.qualityVersions = String(numbers.length);
  drawCandidates(quality.candidates || {}, metrics);
}

// Shadow and canary (issue 17): the candidate's live metrics next to production's, from the
// monitor's "candidate" records: the shadow on the same ids, the canary on its share of ids.
function drawCandidates(candidates, metrics) {
  const head = document.getElementById("candidate-head");
  head.replaceChildren(qualityCell("th", "candidate"), qualityCell("th", "against"),
    qualityCell("th", "labelled", "num"));
  for (const [, title] of metrics) {
    head.append(qualityCell("th", `${title} candidate`, "num"), qualityCell("th", `${title} production`, "num"));
  }
  const rows = document.getElementById("candidate-rows");
  rows.replaceChildren();
  const roles = Object.keys(candidates).sort();
  for (const role of roles) {
    const c = candidates[role];
    const live = c.live || {};
    const prod = c.production_live || {};
    const tr = document.createElement("tr");
    tr.dataset.role = role;
    tr.append(
      qualityCell("td", `${role} v${c.version}${c.alias ? " (" + c.alias + ")" : ""}`),
      qualityCell("td", `production v${c.production_version}${role === "shadow" ? ", same ids" : ", other ids"}`),
      qualityCell("td", `${(live.labelled || 0).toLocaleString("en-US")}`, "num"),
    );
    for (const [name] of metrics) {
      tr.append(qualityCell("td", qualityValue(live[name]), "num"), qualityCell("td", qualityValue(prod[name]), "num"));
    }
    rows.append(tr);
  }
  if (!roles.length) {
    const tr = document.createElement("tr");
    const td = qualityCell("td", "no shadow or canary judged yet ([worker] shadow_alias / canary_alias)", "empty");
    td.colSpan = 3 + 2 * metrics.length;
    tr.append(td);
    rows.append(tr);
  }
  document.body.dataset.qualityCandidates = String(roles.length);
}
