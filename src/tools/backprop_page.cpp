#include "tapegrad/tools/backprop_page.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "tapegrad/error.hpp"
#include "tools/json.hpp"

namespace tapegrad::tools {

using detail::json_string;

namespace {

// The page is a template with @@NAME@@ placeholders, filled in one pass (a
// filled-in value is never scanned again). Everything the page needs is in
// it: no external stylesheet, script, font or image, so it works offline
// and from file://. The graph is laid out by the script itself, because the
// nodes' contents (gradients appearing step by step) are drawn live.

constexpr std::string_view kHead = R"tgpage(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tapegrad backprop_page">
<title>@@TITLE@@</title>
<style>
:root {
  --font: "Liberation Sans", "Helvetica Neue", Arial, "DejaVu Sans", sans-serif;
  --mono: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
  --ink: #1f2937; --muted: #6b7280; --line: #d1d5db; --bg: #f8fafc;
  --op: #fde8c8; --op-line: #f0a64a; --current: #ea580c;
  --upstream: #7c3aed; --sent: #059669; --done: #fb923c;
  --leaf: #dbeafe; --leaf-line: #60a5fa; --const: #eef0f3;
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { font: 14px/1.4 var(--font); color: var(--ink); background: var(--bg);
       display: flex; flex-direction: column; overflow: hidden; }
#error-banner { background: #b91c1c; color: #fff; padding: 8px 14px; font-weight: 600; }
#error-banner[hidden] { display: none; }
header { padding: 10px 18px 10px; background: #fff; border-bottom: 1px solid var(--line);
         display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px; }
header .titles { flex: 1 1 360px; min-width: 0; }
h1 { font-size: 19px; margin: 0; font-weight: 700; letter-spacing: -0.01em; }
header p.desc { margin: 2px 0 0; color: var(--muted); font-size: 13px; }
.controls { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; }
button { font: 600 13px var(--font); color: var(--ink); background: #fff; border: 1px solid #c4c9d2;
         border-radius: 7px; padding: 6px 11px; cursor: pointer; }
button:hover:not(:disabled) { background: #f1f5f9; border-color: #94a3b8; }
button:disabled { opacity: 0.4; cursor: default; }
button.primary { background: var(--current); border-color: var(--current); color: #fff; }
button.primary:hover:not(:disabled) { background: #c2410c; border-color: #c2410c; }
#slider { width: 170px; accent-color: var(--current); margin: 0 4px; }
#step-label { font-weight: 700; min-width: 112px; font-variant-numeric: tabular-nums; }
#step-label small { font-weight: 400; color: var(--muted); }
main { flex: 1; display: flex; min-height: 0; }
#graph-pane { flex: 1; position: relative; min-width: 0; display: flex; flex-direction: column; }
#graph-scroll { flex: 1; overflow: auto; min-height: 0; }
#graph-box { min-width: 100%; min-height: 100%; width: max-content; display: flex; align-items: center;
             justify-content: center; padding: 12px; }
#graph { display: block; flex: none; font-family: var(--font); }
.zoom { position: absolute; top: 10px; right: 14px; z-index: 2; display: flex; gap: 4px; }
.zoom button { padding: 3px 9px; font-size: 12px; }
.legend { flex: none; display: flex; flex-wrap: wrap; gap: 4px 13px; padding: 6px 14px; background: #fff;
          border-top: 1px solid var(--line); font-size: 12px; color: #374151; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.sw { width: 14px; height: 11px; border-radius: 3px; border: 2px solid transparent; display: inline-block; }
aside { width: 450px; flex: none; overflow-y: auto; background: #fff; border-left: 1px solid var(--line);
        padding: 14px 18px 24px; }
.step-title { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; }
.pill { background: var(--current); color: #fff; border-radius: 999px; padding: 1px 10px; font-weight: 700; font-size: 13px; }
.op-name { font-size: 20px; font-weight: 700; }
.muted { color: var(--muted); }
.formula { font: 15px var(--mono); background: #fff7ed; border: 1px solid #fed7aa; border-radius: 8px;
           padding: 8px 11px; margin: 8px 0; overflow-x: auto; white-space: nowrap; }
p.explain { margin: 6px 0 12px; color: #374151; font-size: 13px; }
section.io { border: 1px solid var(--line); border-left-width: 5px; border-radius: 8px; padding: 8px 11px; margin: 10px 0; }
section.io.out { border-left-color: var(--upstream); }
section.io.in { border-left-color: var(--sent); }
section.io.nograd { border-left-color: #cbd5e1; }
section.io h3 { margin: 0 0 5px; font-size: 14px; display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
section.io h3 .role { font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); font-weight: 700; }
.row { display: grid; grid-template-columns: 128px minmax(0, 1fr); gap: 8px; align-items: start; margin: 5px 0; }
.row.wide { grid-template-columns: minmax(0, 1fr); gap: 3px; }
.row .label { font-size: 12px; color: #4b5563; padding-top: 2px; }
.row .label b { display: block; color: var(--ink); font-size: 13px; }
.row.upstream .label b { color: var(--upstream); }
.row.sent .label b { color: var(--sent); }
.scalar { font: 600 15px var(--mono); }
.rule { display: block; font-size: 11px; color: var(--muted); margin-top: 2px; }
.equation { font: 13px var(--mono); background: #ecfdf5; border-radius: 6px; padding: 4px 8px; margin: 4px 0 2px;
            display: inline-block; }
.note { font-size: 12px; color: #4b5563; margin: 4px 0 0; }
.tbl-wrap { overflow-x: auto; max-width: 100%; }
table.tensor { border-collapse: collapse; font: 12px var(--mono); }
table.tensor td { border: 1px solid #e5e7eb; padding: 1px 6px; text-align: right; white-space: nowrap; }
.summary { font: 12px var(--mono); }
/* the graph */
.edge path { fill: none; stroke: #9ca3af; stroke-width: 1.4; }
.edge polygon { fill: #9ca3af; }
.edge.done path { stroke: var(--done); stroke-width: 2; }
.edge.done polygon { fill: var(--done); }
.edge.cur-in path { stroke: var(--sent); stroke-width: 3.2; stroke-dasharray: 7 5; animation: flow 0.9s linear infinite; }
.edge.cur-in polygon { fill: var(--sent); }
.edge.cur-nograd path { stroke: #6b7280; stroke-width: 2; stroke-dasharray: 2 4; }
.edge.cur-nograd polygon { fill: #6b7280; }
.edge.cur-out path { stroke: var(--upstream); stroke-width: 3.2; stroke-dasharray: 7 5; animation: flow 0.9s linear infinite; }
.edge.cur-out polygon { fill: var(--upstream); }
@keyframes flow { from { stroke-dashoffset: 0; } to { stroke-dashoffset: 24; } }
.tnode .frame { fill: #fff; stroke: #9ca3af; stroke-width: 1.2; }
.tnode.kind-leaf .frame { fill: var(--leaf); stroke: var(--leaf-line); }
.tnode.kind-constant .frame { fill: var(--const); stroke: #b6bcc6; stroke-dasharray: 4 3; }
.tnode.root .frame { stroke: #111827; stroke-width: 2; }
.tnode.is-out .frame { stroke: var(--upstream); stroke-width: 3.5; stroke-dasharray: none; }
.tnode.is-in .frame { stroke: var(--sent); stroke-width: 3.5; stroke-dasharray: none; }
.tnode.is-in-nograd .frame { stroke: #6b7280; stroke-width: 2.5; }
.tnode .tname { font-weight: 700; font-size: 12px; fill: var(--ink); }
.tnode .tshape { font-size: 10px; fill: var(--muted); }
.tnode .cap { font-size: 9px; fill: var(--muted); letter-spacing: 0.02em; }
.tnode .cap.has { fill: #b45309; font-weight: 700; }
.tnode .cap.partial { fill: #b45309; font-style: italic; }
.num { font-family: var(--mono); font-size: 11px; fill: var(--ink); }
.num.grad { fill: #9a3412; font-weight: 700; }
.num.none { fill: #b6bcc6; font-weight: 400; }
.onode rect { fill: var(--op); stroke: var(--op-line); stroke-width: 1.3; }
.onode text.oname { font-weight: 700; font-size: 12px; fill: #7c2d12; }
.onode .badge circle { fill: #fff; stroke: var(--op-line); stroke-width: 1.2; }
.onode .badge text { font-size: 10px; font-weight: 700; fill: #7c2d12; }
.onode.done rect { fill: #fff1e2; stroke: var(--done); }
.onode.done .badge circle { fill: var(--done); stroke: var(--done); }
.onode.done .badge text { fill: #fff; }
.onode.current rect { fill: var(--current); stroke: #9a3412; stroke-width: 2; }
.onode.current text.oname { fill: #fff; }
.onode.current { filter: drop-shadow(0 0 7px rgba(234, 88, 12, 0.75)); }
.onode.current .badge circle { fill: #9a3412; stroke: #fff; stroke-width: 1.5; }
.onode.current .badge text { fill: #fff; }
.onode.unvisited rect { fill: #f3f4f6; stroke: #c4c9d2; }
.node { cursor: pointer; }
.empty { padding: 40px; color: var(--muted); font-size: 15px; }
@media (max-width: 900px) {
  main { flex-direction: column; }
  #graph-pane { min-height: 0; }
  aside { width: auto; height: 45%; border-left: none; border-top: 1px solid var(--line); }
}
</style>
</head>
)tgpage";

constexpr std::string_view kBody = R"tgpage(<body>
<div id="error-banner" role="alert" hidden></div>
<script>
// Errors first: anything that goes wrong later is recorded for tests
// (data-errors) and shown to the reader (the banner).
(function () {
  var errors = [];
  function record(text) {
    errors.push(String(text));
    document.body.dataset.errors = errors.join(' | ');
    var banner = document.getElementById('error-banner');
    if (banner) {
      banner.hidden = false;
      banner.textContent = 'Script error: ' + errors.join(' | ');
    }
  }
  window.tapegradRecordError = record;
  window.onerror = function (message, source, line) {
    record(message + (line ? ' (line ' + line + ')' : ''));
    return false;
  };
  window.addEventListener('unhandledrejection', function (event) {
    var reason = event.reason;
    record('unhandled rejection: ' + (reason && reason.message ? reason.message : reason));
  });
})();
</script>
<header>
  <div class="titles">
    <h1>@@TITLE@@</h1>
    <p class="desc">@@DESCRIPTION@@</p>
  </div>
  <div class="controls" role="toolbar" aria-label="backward steps">
    <button id="reset" type="button" title="Back to the first step (Home)">&#x27F2; Reset</button>
    <button id="prev" type="button" title="Previous step (&#x2190;)">&#x25C0; Previous</button>
    <button id="next" type="button" class="primary" title="Next step (&#x2192;)">Next &#x25B6;</button>
    <button id="play" type="button" title="Step through automatically">Play</button>
    <input id="slider" type="range" min="0" max="0" step="1" value="0" aria-label="step">
    <span id="step-label" aria-live="polite"></span>
  </div>
</header>
<main>
  <section id="graph-pane" aria-label="computation graph">
    <div class="zoom">
      <button id="zoom-out" type="button" title="Smaller">&#x2212;</button>
      <button id="zoom-fit" type="button" title="Fit the graph in the window">Fit</button>
      <button id="zoom-in" type="button" title="Larger">+</button>
    </div>
    <div id="graph-scroll"><div id="graph-box"><svg id="graph" role="img" aria-label="computation graph"></svg></div></div>
    <div class="legend">
      <span><i class="sw" style="background:var(--current);border-color:#9a3412"></i>current op</span>
      <span><i class="sw" style="background:#fff;border-color:var(--upstream)"></i>its output (upstream &#x2202;L/&#x2202;y)</span>
      <span><i class="sw" style="background:#fff;border-color:var(--sent)"></i>its inputs (receive &#x2202;L/&#x2202;x)</span>
      <span><i class="sw" style="background:#fff1e2;border-color:var(--done)"></i>done</span>
      <span><i class="sw" style="background:var(--leaf);border-color:var(--leaf-line)"></i>parameter</span>
      <span><i class="sw" style="background:var(--const);border-color:#b6bcc6"></i>data, target</span>
      <span><i class="sw" style="background:rgba(220,38,38,.6)"></i>&gt;0 <i class="sw" style="background:rgba(37,99,235,.6)"></i>&lt;0</span>
    </div>
  </section>
  <aside id="panel" aria-live="polite"></aside>
</main>
<script type="application/json" id="trace-data">@@TRACE_JSON@@</script>
<script type="application/json" id="page-options">@@OPTIONS_JSON@@</script>
)tgpage";

constexpr std::string_view kScript = R"tgpage(<script>
(function () {
'use strict';

var $ = function (id) { return document.getElementById(id); };
var trace = JSON.parse($('trace-data').textContent);
var opts = JSON.parse($('page-options').textContent);
var PREC = Math.max(1, Math.min(17, opts.precision || 6));
var NODE_PREC = Math.min(4, PREC);

var nodes = trace.nodes || [];
var steps = trace.steps || [];
var edges = trace.edges || [];
var byId = {};
nodes.forEach(function (n) { byId[n.id] = n; });
var tensors = nodes.filter(function (n) { return n.type === 'tensor'; });
var ops = nodes.filter(function (n) { return n.type === 'op'; });
var stepOfOp = {};
steps.forEach(function (s, k) { stepOfOp[s.op] = k; });

// ------------------------------------------------------------ numbers

function toNum(v) {
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return NaN;  // "NaN", or null: an undefined local derivative
}

function trimZeros(s) {
  return s.indexOf('.') < 0 ? s : s.replace(/0+$/, '').replace(/\.$/, '');
}

// Like printf's %g with p significant digits, with a real minus sign.
function fmt(v, p) {
  if (v === null || v === undefined) return '\u2014';
  var x = toNum(v);
  if (Number.isNaN(x)) return 'nan';
  if (!isFinite(x)) return x > 0 ? '\u221E' : '\u2212\u221E';
  if (x === 0) return '0';
  var s = '';
  var a = Math.abs(x);
  if (a >= 1e-4 && a < Math.pow(10, p)) {
    s = x.toPrecision(p);
    if (s.indexOf('e') < 0) s = trimZeros(s); else s = '';
  }
  if (!s) {
    var parts = x.toExponential(p - 1).split('e');
    s = trimZeros(parts[0]) + 'e' + parts[1].replace('+', '');
  }
  return s.replace(/-/g, '\u2212');
}

function numel(shape) {
  var n = 1;
  for (var i = 0; i < shape.length; ++i) n *= shape[i];
  return n;
}

function shapeText(shape) {
  return shape.length === 0 ? 'scalar' : '[' + shape.join('\u00D7') + ']';
}

function flatten(values, out) {
  if (Array.isArray(values)) {
    for (var i = 0; i < values.length; ++i) flatten(values[i], out);
  } else {
    out.push(values);
  }
  return out;
}

// A tensor of the JSON as {shape, dtype, flat (row-major, or null when only
// the summary is known), summary}; memoised on the object.
function T(t) {
  if (!t) return null;
  if (!t.norm_) {
    var flat = t.values === null || t.values === undefined ? null : flatten(t.values, []);
    // A 0-d local derivative that is undefined (upstream 0) is a bare null.
    if (t.values === null && t.shape.length === 0 && (opts.max_elements === undefined || opts.max_elements >= 1)) flat = [null];
    t.norm_ = {shape: t.shape, dtype: t.dtype, flat: flat, summary: t.summary || null};
  }
  return t.norm_;
}

// Rows and columns to draw a tensor as a table: a row vector for 1-D, the
// last axis as columns otherwise.
function grid(shape) {
  if (shape.length === 0) return {rows: 1, cols: 1};
  var cols = shape[shape.length - 1];
  return {rows: Math.max(1, numel(shape) / Math.max(1, cols)), cols: Math.max(1, cols)};
}

function maxAbs(flat) {
  var m = 0;
  for (var i = 0; i < flat.length; ++i) {
    var x = Math.abs(toNum(flat[i]));
    if (isFinite(x) && x > m) m = x;
  }
  return m;
}

// Diverging tint: red for positive, blue for negative, by |x| / scale.
function heat(v, scale, strength) {
  var x = toNum(v);
  if (v === null || Number.isNaN(x)) return 'rgba(156,163,175,0.25)';
  if (!isFinite(x)) return 'rgba(250,204,21,0.8)';
  var a = scale > 0 ? Math.min(1, Math.abs(x) / scale) : 0;
  var alpha = (0.06 + strength * a).toFixed(3);
  return x >= 0 ? 'rgba(220,38,38,' + alpha + ')' : 'rgba(37,99,235,' + alpha + ')';
}

function esc(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
  });
}

// ------------------------------------------------------------ gradients

// Every gradient a tensor receives, with the step that sends it; the root
// starts with the seed. A tensor's gradient at step k is the sum of what
// arrived up to k; it is complete when all its consumers have sent theirs.
var contributions = {};
tensors.forEach(function (t) { contributions[t.id] = []; });
if (trace.seed && contributions[trace.root]) contributions[trace.root].push({step: -1, grad: trace.seed});
steps.forEach(function (s, k) {
  s.inputs.forEach(function (input) {
    if (input.grad && contributions[input.tensor]) contributions[input.tensor].push({step: k, grad: input.grad});
  });
});

var gradCache = {};
function gradAt(id, k) {
  var all = contributions[id] || [];
  var known = all.filter(function (c) { return c.step <= k; });
  if (known.length === 0) return null;
  var key = id + '/' + known.length;
  if (gradCache[key]) return gradCache[key];
  var t;
  if (known.length === 1) {
    t = T(known[0].grad);
  } else {
    var parts = known.map(function (c) { return T(c.grad); });
    if (parts.every(function (p) { return p.flat; })) {
      var sum = parts[0].flat.map(toNum);
      for (var j = 1; j < parts.length; ++j) {
        for (var i = 0; i < sum.length; ++i) sum[i] += toNum(parts[j].flat[i]);
      }
      t = {shape: parts[0].shape, dtype: parts[0].dtype, flat: sum, summary: null};
    } else {
      t = {shape: parts[0].shape, dtype: parts[0].dtype, flat: null, summary: null};
    }
  }
  return (gradCache[key] = {tensor: t, count: known.length, total: all.length, complete: known.length === all.length});
}

// An op's output tensors (lstm_cell: h, c); older traces name only one.
function outputsOf(o) { return o.outputs || [o.output]; }

function displayName(t) {
  if (t.name) return t.name;
  if (t.kind === 'intermediate' && t.producer && byId[t.producer]) {
    var p = byId[t.producer];
    return p.op + ' output' + (outputsOf(p).length > 1 ? ' ' + (t.producer_output || 0) : '');
  }
  return (t.kind === 'leaf' ? 'leaf ' : 'constant ') + t.id;
}

// ------------------------------------------------------------ measuring text

var FONT = getComputedStyle(document.documentElement).getPropertyValue('--font').trim() || 'sans-serif';
var MONO = getComputedStyle(document.documentElement).getPropertyValue('--mono').trim() || 'monospace';
var ctx = document.createElement('canvas').getContext('2d');
function textWidth(text, font) {
  ctx.font = font;
  return Math.ceil(ctx.measureText(text).width);
}
var F_NAME = '700 12px ' + FONT, F_SHAPE = '10px ' + FONT, F_CAP = '9px ' + FONT;
var F_NUM = '11px ' + MONO, F_NUM_BOLD = '700 11px ' + MONO, F_OP = '700 12px ' + FONT;

// ------------------------------------------------------------ node contents

// How a tensor's value and gradient are drawn inside its node: a number
// (one element), small tables of numbers (up to 4), coloured cells (up to
// the embedded size), or a line of summary.
function cellPlan(t) {
  var n = numel(t.shape);
  var v = T(t.value);
  var finalGrad = gradAt(t.id, Infinity);
  var g = finalGrad ? finalGrad.tensor : null;
  var known = (v && v.flat) || (g && g.flat);
  var texts = [];
  function addTexts(x) { if (x && x.flat) x.flat.forEach(function (e) { texts.push(fmt(e, NODE_PREC)); }); }
  addTexts(v);
  var all = contributions[t.id] || [];
  for (var c = 1; c <= all.length; ++c) {
    var partial = gradAt(t.id, all[c - 1].step);
    if (partial) addTexts(partial.tensor);
  }
  var plan = {n: n, mode: 'summary', w: 0, h: 15};
  var shape = t.shape.length > 2 ? [numel(t.shape.slice(0, -1)), t.shape[t.shape.length - 1]] : t.shape;
  var gr = grid(shape);
  if (known && n === 1) {
    plan.mode = 'scalar';
    plan.w = Math.max.apply(null, texts.map(function (s) { return textWidth(s, F_NUM_BOLD); }).concat([32]));
  } else if (known && n <= 4 && n > 0) {
    plan.mode = 'cells';
    plan.rows = gr.rows; plan.cols = gr.cols;
    plan.cw = Math.max.apply(null, texts.map(function (s) { return textWidth(s, F_NUM); }).concat([14])) + 8;
    plan.ch = 13;
    plan.w = plan.cw * gr.cols; plan.h = plan.ch * gr.rows;
  } else if (known && n > 0) {
    plan.mode = 'heat';
    plan.rows = gr.rows; plan.cols = gr.cols;
    if (shape.length === 1 && n > 16) {  // a long vector wraps into a block
      plan.cols = Math.ceil(Math.sqrt(n)); plan.rows = Math.ceil(n / plan.cols);
    }
    var big = Math.max(plan.rows, plan.cols);
    plan.cs = big <= 4 ? 10 : big <= 8 ? 8 : Math.max(3, Math.floor(72 / big));
    plan.w = plan.cs * plan.cols; plan.h = plan.cs * plan.rows;
  } else {
    plan.w = textWidth('mean \u22120.0000', F_NUM);
  }
  plan.w = Math.max(plan.w, 40);
  return plan;
}

function miniSVG(plan, x, isGrad) {
  var cls = isGrad ? 'num grad' : 'num';
  if (!x) {
    return '<text class="num none" x="0" y="11">' + (isGrad ? 'not yet' : '?') + '</text>';
  }
  if (plan.mode === 'scalar' && x.flat) return '<text class="' + cls + '" x="0" y="11">' + esc(fmt(x.flat[0], NODE_PREC)) + '</text>';
  if ((plan.mode === 'cells' || plan.mode === 'heat') && x.flat) {
    var scale = maxAbs(x.flat), out = '';
    for (var i = 0; i < x.flat.length; ++i) {
      var r = Math.floor(i / plan.cols), c = i % plan.cols;
      if (plan.mode === 'cells') {
        out += '<rect x="' + c * plan.cw + '" y="' + r * plan.ch + '" width="' + plan.cw + '" height="' + plan.ch +
               '" fill="' + heat(x.flat[i], scale, 0.5) + '" stroke="#fff" stroke-width="1"/>';
        out += '<text class="' + cls + '" x="' + (c * plan.cw + plan.cw - 4) + '" y="' + (r * plan.ch + 10) +
               '" text-anchor="end">' + esc(fmt(x.flat[i], NODE_PREC)) + '</text>';
      } else {
        out += '<rect x="' + c * plan.cs + '" y="' + r * plan.cs + '" width="' + plan.cs + '" height="' + plan.cs +
               '" fill="' + heat(x.flat[i], scale, 0.85) + '" stroke="#fff" stroke-width="0.6"/>';
      }
    }
    return out;
  }
  var s = x.summary || x.summary_;
  if (s) return '<text class="' + cls + '" x="0" y="11">mean ' + esc(fmt(s.mean, 3)) + '</text>';
  return '<text class="' + cls + '" x="0" y="11">' + (isGrad ? 'known' : '?') + '</text>';
}

// A tensor node: its name and shape, then its value and gradient side by
// side, or one above the other (captions on the left) when they are wide.
var PAD = 7, HEAD = 16, CAP = 11, GAP_BOX = 12;
var models = {};
tensors.forEach(function (t) {
  var plan = cellPlan(t);
  var title = displayName(t), shape = shapeText(t.shape);
  var headW = textWidth(title, F_NAME) + 8 + textWidth(shape, F_SHAPE);
  var capW = textWidth('gradient 2/2', F_CAP);
  var m = {node: t, plan: plan, title: title, shape: shape, tensor: true};
  if (plan.w > 110) {
    var rowH = Math.max(plan.h, 12);
    m.w = Math.max(headW, capW + 8 + plan.w) + 2 * PAD;
    m.h = PAD + HEAD + 2 * rowH + 5 + PAD;
    m.vx = m.gx = PAD + capW + 8;
    m.vy = PAD + HEAD;
    m.gy = m.vy + rowH + 5;
    m.vcap = [PAD, m.vy + 9];
    m.gcap = [PAD, m.gy + 9];
  } else {
    var boxW = Math.max(plan.w, capW);
    m.w = Math.max(headW, 2 * boxW + GAP_BOX) + 2 * PAD;
    m.h = PAD + HEAD + CAP + plan.h + PAD;
    m.vx = PAD;
    m.gx = PAD + boxW + GAP_BOX;
    m.vy = m.gy = PAD + HEAD + CAP;
    m.vcap = [m.vx, PAD + HEAD + 8];
    m.gcap = [m.gx, PAD + HEAD + 8];
  }
  models[t.id] = m;
});
ops.forEach(function (o) {
  var w = textWidth(o.op, F_OP) + 30;
  models[o.id] = {node: o, w: Math.max(w, 56), h: 26, tensor: false};
});

// ------------------------------------------------------------ layout

// Layered, inputs on top: an op sits one layer below its lowest input, its
// output one below it; inputs that no op made (parameters, data) sit just
// above their first consumer. Orders within layers by barycentres, then
// x positions pulled towards neighbours without overlaps.
function layout() {
  var rank = {};
  ops.forEach(function (o) {  // creation order: inputs come first
    var r = 0;
    o.inputs.forEach(function (id) { if (byId[id].producer) r = Math.max(r, rank[id] + 1); });
    rank[o.id] = Math.max(r, 1);
    outputsOf(o).forEach(function (id) { rank[id] = rank[o.id] + 1; });
  });
  var consumers = {};
  edges.forEach(function (e) {
    if (byId[e.from] && byId[e.from].type === 'tensor') (consumers[e.from] = consumers[e.from] || []).push(e);
  });
  tensors.forEach(function (t) {
    if (rank[t.id] !== undefined) return;
    var cs = consumers[t.id] || [];
    var r = Infinity;
    cs.forEach(function (e) { r = Math.min(r, rank[e.to] - 1); });
    rank[t.id] = isFinite(r) ? Math.max(0, r) : 0;
  });
  var depth = 0;
  nodes.forEach(function (n) { depth = Math.max(depth, rank[n.id]); });
  var layers = [];
  for (var r = 0; r <= depth; ++r) layers.push([]);
  nodes.forEach(function (n) { layers[rank[n.id]].push(n.id); });

  // neighbours with a small offset so that an op's inputs keep their order
  var up = {}, down = {};
  nodes.forEach(function (n) { up[n.id] = []; down[n.id] = []; });
  edges.forEach(function (e) {
    if (!byId[e.from] || !byId[e.to]) return;
    var nin = byId[e.to].type === 'op' ? byId[e.to].inputs.length : 1;
    var off = e.input === null ? 0 : (e.input - (nin - 1) / 2) * 0.02;
    down[e.from].push({id: e.to, off: -off});
    up[e.to].push({id: e.from, off: off});
  });
  var pos = {};
  function index() {
    layers.forEach(function (layer) {
      layer.forEach(function (id, i) { pos[id] = (i + 0.5) / layer.length; });
    });
  }
  function crossings() {
    var total = 0, list = [];
    edges.forEach(function (e) {
      if (byId[e.from] && byId[e.to]) list.push([rank[e.from], pos[e.from], pos[e.to]]);
    });
    for (var i = 0; i < list.length; ++i) {
      for (var j = i + 1; j < list.length; ++j) {
        if (list[i][0] === list[j][0] && (list[i][1] - list[j][1]) * (list[i][2] - list[j][2]) < 0) ++total;
      }
    }
    return total;
  }
  index();
  var best = layers.map(function (l) { return l.slice(); });
  var bestCrossings = edges.length < 600 ? crossings() : 0;
  for (var iter = 0; iter < 12 && bestCrossings > 0; ++iter) {
    var downward = iter % 2 === 0;
    for (var step = 0; step <= depth; ++step) {
      var layer = layers[downward ? step : depth - step];
      var key = {};
      layer.forEach(function (id) {
        var ns = downward ? up[id] : down[id];
        if (ns.length === 0) ns = downward ? down[id] : up[id];
        if (ns.length === 0) { key[id] = pos[id]; return; }
        var s = 0;
        ns.forEach(function (nb) { s += pos[nb.id] + nb.off; });
        key[id] = s / ns.length;
      });
      layer.sort(function (a, b) { return key[a] - key[b] || pos[a] - pos[b]; });
      layer.forEach(function (id, i) { pos[id] = (i + 0.5) / layer.length; });
    }
    var c = crossings();
    if (c < bestCrossings) {
      bestCrossings = c;
      best = layers.map(function (l) { return l.slice(); });
    }
  }
  layers = best;
  index();

  // x: pack, then pull towards the neighbours' centres a few times
  var GAP_X = 26, x = {};
  layers.forEach(function (layer) {
    var total = -GAP_X;
    layer.forEach(function (id) { total += models[id].w + GAP_X; });
    var at = -total / 2;
    layer.forEach(function (id) { x[id] = at + models[id].w / 2; at += models[id].w + GAP_X; });
  });
  function place(layer, want) {
    var n = layer.length, left = [], right = [];
    for (var i = 0; i < n; ++i) {
      var id = layer[i];
      left[i] = want[id];
      if (i > 0) left[i] = Math.max(left[i], left[i - 1] + (models[layer[i - 1]].w + models[id].w) / 2 + GAP_X);
    }
    for (var j = n - 1; j >= 0; --j) {
      var jd = layer[j];
      right[j] = want[jd];
      if (j < n - 1) right[j] = Math.min(right[j], right[j + 1] - (models[layer[j + 1]].w + models[jd].w) / 2 - GAP_X);
    }
    for (var k = 0; k < n; ++k) x[layer[k]] = (left[k] + right[k]) / 2;
  }
  for (var round = 0; round < 16; ++round) {
    var downwards = round % 2 === 0;
    for (var s2 = 0; s2 <= depth; ++s2) {
      var lay = layers[downwards ? s2 : depth - s2];
      var want = {};
      lay.forEach(function (id) {
        var ns = up[id].concat(down[id]);
        if (ns.length === 0) { want[id] = x[id]; return; }
        var sum = 0;
        ns.forEach(function (nb) { sum += x[nb.id]; });
        want[id] = sum / ns.length;
      });
      place(lay, want);
    }
  }

  // Links of a chain (one in, one out: an activation and its output) sit
  // exactly under what feeds them, so that chains are drawn straight.
  for (var s3 = 1; s3 <= depth; ++s3) {
    var chain = layers[s3], aligned = {};
    chain.forEach(function (id) {
      aligned[id] = x[id];
      if (up[id].length === 1 && down[up[id][0].id].length === 1) aligned[id] = x[up[id][0].id];
    });
    place(chain, aligned);
  }

  // y: layers stacked, each as tall as its tallest node
  var GAP_Y = 19, y = {}, at = 0;
  layers.forEach(function (layer) {
    var h = 0;
    layer.forEach(function (id) { h = Math.max(h, models[id].h); });
    layer.forEach(function (id) { y[id] = at + h / 2; });
    at += h + GAP_Y;
  });
  var minX = Infinity, maxX = -Infinity, maxY = 0;
  nodes.forEach(function (n) {
    minX = Math.min(minX, x[n.id] - models[n.id].w / 2);
    maxX = Math.max(maxX, x[n.id] + models[n.id].w / 2);
    maxY = Math.max(maxY, y[n.id] + models[n.id].h / 2);
  });
  var M = 10;
  nodes.forEach(function (n) {
    models[n.id].x = x[n.id] - minX + M;
    models[n.id].y = y[n.id] + M;
  });
  return {width: Math.ceil(maxX - minX + 2 * M), height: Math.ceil(maxY + 2 * M)};
}

// ------------------------------------------------------------ drawing

function edgeId(e) { return 'e-' + e.from + '-' + e.to + '-' + (e.input === null ? 'out' : e.input); }

function drawEdge(e) {
  var a = models[e.from], b = models[e.to];
  var x1 = a.x, y1 = a.y + a.h / 2;
  var x2 = b.x, y2 = b.y - b.h / 2 - 6;
  if (!b.tensor && e.input !== null) {  // spread an op's inputs along its top
    var nin = b.node.inputs.length;
    x2 += (e.input - (nin - 1) / 2) * Math.min(14, b.w / (nin + 1));
  }
  var dy = Math.max(18, (y2 - y1) / 2);
  var d = 'M' + x1.toFixed(1) + ',' + y1.toFixed(1) + ' C' + x1.toFixed(1) + ',' + (y1 + dy).toFixed(1) + ' ' +
          x2.toFixed(1) + ',' + (y2 - dy).toFixed(1) + ' ' + x2.toFixed(1) + ',' + y2.toFixed(1);
  var head = (x2 - 4.5).toFixed(1) + ',' + y2.toFixed(1) + ' ' + (x2 + 4.5).toFixed(1) + ',' + y2.toFixed(1) + ' ' +
             x2.toFixed(1) + ',' + (y2 + 6).toFixed(1);
  return '<g class="edge" id="' + esc(edgeId(e)) + '"><path d="' + d + '"/><polygon points="' + head + '"/></g>';
}

function drawTensor(m) {
  var t = m.node, x0 = m.x - m.w / 2, y0 = m.y - m.h / 2;
  var cls = 'node tnode kind-' + t.kind + (t.id === trace.root ? ' root' : '');
  var tip = t.id + ' \u00B7 ' + displayName(t) + ' \u00B7 ' + t.kind + ' \u00B7 ' + t.dtype + ' ' + shapeText(t.shape);
  var nameW = textWidth(m.title, F_NAME);
  return '<g class="' + cls + '" id="n-' + esc(t.id) + '" data-id="' + esc(t.id) + '" transform="translate(' +
         x0.toFixed(1) + ',' + y0.toFixed(1) + ')"><title>' + esc(tip) + '</title>' +
         '<rect class="frame" width="' + m.w + '" height="' + m.h + '" rx="7"/>' +
         '<text class="tname" x="' + PAD + '" y="' + (PAD + 11) + '">' + esc(m.title) + '</text>' +
         '<text class="tshape" x="' + (PAD + nameW + 8) + '" y="' + (PAD + 11) + '">' + esc(m.shape) + '</text>' +
         '<text class="cap" x="' + m.vcap[0] + '" y="' + m.vcap[1] + '">value</text>' +
         '<text class="cap" id="gc-' + esc(t.id) + '" x="' + m.gcap[0] + '" y="' + m.gcap[1] + '">gradient</text>' +
         '<g transform="translate(' + m.vx + ',' + m.vy + ')">' + miniSVG(m.plan, T(t.value), false) + '</g>' +
         '<g id="gv-' + esc(t.id) + '" transform="translate(' + m.gx + ',' + m.gy + ')"></g></g>';
}

function drawOp(m) {
  var o = m.node, x0 = m.x - m.w / 2, y0 = m.y - m.h / 2;
  var k = stepOfOp[o.id];
  var badge = k === undefined ? '' :
      '<g class="badge"><circle cx="' + m.w + '" cy="0" r="9"/><text x="' + m.w + '" y="3.5" text-anchor="middle">' + k +
      '</text></g>';
  var tip = o.id + ' \u00B7 ' + o.op + ': ' + o.formula + (k === undefined ? ' (not visited by backward)' : ' (backward step ' + k + ')');
  return '<g class="node onode' + (k === undefined ? ' unvisited' : '') + '" id="n-' + esc(o.id) + '" data-id="' + esc(o.id) +
         '" transform="translate(' + x0.toFixed(1) + ',' + y0.toFixed(1) + ')"><title>' + esc(tip) + '</title>' +
         '<rect width="' + m.w + '" height="' + m.h + '" rx="13"/>' +
         '<text class="oname" x="' + m.w / 2 + '" y="17" text-anchor="middle">' + esc(o.op) + '</text>' + badge + '</g>';
}

var svg = $('graph');
var size = layout();
var parts = ['<g id="edges">'];
edges.forEach(function (e) { if (models[e.from] && models[e.to]) parts.push(drawEdge(e)); });
parts.push('</g><g id="nodes">');
ops.forEach(function (o) { parts.push(drawOp(models[o.id])); });
tensors.forEach(function (t) { parts.push(drawTensor(models[t.id])); });
parts.push('</g>');
svg.setAttribute('viewBox', '0 0 ' + size.width + ' ' + size.height);
svg.innerHTML = parts.join('');

var elements = {};
nodes.forEach(function (n) { elements[n.id] = $('n-' + n.id); });
var edgeElements = edges.map(function (e) { return {edge: e, el: $(edgeId(e))}; });

// ------------------------------------------------------------ zoom

var zoom = null;  // null: fit, but readable; 'fit': fit whatever the size; or a scale
function fitScale() {
  var pane = $('graph-scroll');
  var w = pane.clientWidth - 26, h = pane.clientHeight - 26;
  return Math.max(0.2, Math.min(1.6, w / size.width, h / size.height));
}
// Fitting a large graph would make it unreadable: below 0.7 it is drawn
// at 0.8 and scrolled to the current step instead.
function autoScale() {
  var f = fitScale();
  return f >= 0.7 ? f : 0.8;
}
function scale() {
  return zoom === null ? autoScale() : zoom === 'fit' ? fitScale() : zoom;
}
function applyZoom() {
  var z = scale();
  svg.style.width = Math.round(size.width * z) + 'px';
  svg.style.height = Math.round(size.height * z) + 'px';
}
$('zoom-in').addEventListener('click', function () { zoom = Math.min(4, scale() * 1.25); applyZoom(); });
$('zoom-out').addEventListener('click', function () { zoom = Math.max(0.15, scale() / 1.25); applyZoom(); });
$('zoom-fit').addEventListener('click', function () { zoom = 'fit'; applyZoom(); });
window.addEventListener('resize', function () { if (typeof zoom !== 'number') applyZoom(); });

// ------------------------------------------------------------ the side panel

function tableHTML(x, isGrad) {
  if (!x) return '<span class="muted">unknown</span>';
  if (!x.flat) {
    var s = x.summary;
    if (!s) return '<span class="muted">' + esc(shapeText(x.shape)) + ' (too large to show)</span>';
    return '<span class="summary">' + esc(shapeText(x.shape)) + ' min ' + esc(fmt(s.min, PREC)) + ', max ' +
           esc(fmt(s.max, PREC)) + ', mean ' + esc(fmt(s.mean, PREC)) + ', norm ' + esc(fmt(s.norm, PREC)) + '</span>';
  }
  if (x.flat.length === 1) return '<span class="scalar">' + esc(fmt(x.flat[0], PREC)) + '</span>';
  var g = grid(x.shape), scale = maxAbs(x.flat), out = '<div class="tbl-wrap"><table class="tensor">';
  for (var r = 0; r < g.rows; ++r) {
    out += '<tr>';
    for (var c = 0; c < g.cols; ++c) {
      var v = x.flat[r * g.cols + c];
      out += '<td style="background:' + heat(v, scale, isGrad ? 0.45 : 0.35) + '">' + esc(fmt(v, PREC)) + '</td>';
    }
    out += '</tr>';
  }
  return out + '</table></div>';
}

function row(kind, label, hint, content) {
  if (content.indexOf('<table') >= 0) kind += ' wide';
  return '<div class="row ' + kind + '"><div class="label"><b>' + label + '</b>' + (hint ? esc(hint) : '') +
         '</div><div>' + content + '</div></div>';
}

// "upstream × local = sent" in numbers, for a few elements: × when the
// upstream gradient is one number, ⊙ (elementwise) when it has the shape.
function chainEquation(up, local, sent) {
  if (!up || !local || !sent || !up.flat || !local.flat || !sent.flat) return '';
  var n = sent.flat.length;
  if (n > 4 || local.flat.length !== n || (up.flat.length !== 1 && up.flat.length !== n)) return '';
  if (local.flat.some(function (v) { return v === null; })) return '';
  function list(x) {
    var items = x.flat.map(function (v) { return fmt(v, PREC); });
    return items.length === 1 ? items[0] : '[' + items.join(', ') + ']';
  }
  return list(up) + (up.flat.length === 1 ? ' \u00D7 ' : ' \u2299 ') + list(local) + ' = ' + list(sent);
}

function kindWord(t) {
  return t.kind === 'leaf' ? 'parameter' : t.kind === 'constant' ? 'constant' : 'intermediate';
}

function panelHTML(k) {
  if (steps.length === 0) {
    return '<p class="empty">No backward steps: the traced tensor was not made by an op.</p>';
  }
  var s = steps[k], out = byId[s.output];
  var outIds = s.outputs || [s.output], ups = s.grad_outputs || [s.grad_output];
  var h = '<div class="step-title"><span class="pill">step ' + k + '</span><span class="op-name">' + esc(s.name) +
          '</span><span class="muted">' + esc(s.op) + '</span></div>';
  h += '<div class="formula">' + esc(s.formula) + '</div>';
  var outName = '<b>' + esc(displayName(out)) + '</b>';
  if (k === 0) {
    h += '<p class="explain">Backward starts at ' + outName + ' with the seed \u2202L/\u2202L = 1. ' +
         'Each step takes the gradient that reached an op\u2019s output (upstream), multiplies it by the op\u2019s ' +
         'local derivative (chain rule) and sends the product to each input.</p>';
  } else {
    var uses = (contributions[s.output] || []).length;
    h += '<p class="explain">' + (uses > 1 ? 'All ' + uses + ' ops that use ' + outName + ' have sent their gradients; ' +
         'their sum is its complete upstream gradient. ' : 'The gradient of ' + outName + ' is complete. ') +
         'Now <b>' + esc(s.name) + '</b> runs backward: sent \u2202L/\u2202x = upstream \u2202L/\u2202y \u00D7 local ' +
         '\u2202y/\u2202x, for each input that needs a gradient.</p>';
  }
  outIds.forEach(function (id, j) {
    var y = outIds.length > 1 ? 'y' + j : 'y', t = byId[id], upj = T(ups[j]);
    h += '<section class="io out"><h3><span class="role">output ' + y + '</span>' + esc(displayName(t)) +
         ' <span class="muted">' + esc(shapeText(t.shape)) + '</span></h3>';
    h += row('value', 'value', '', tableHTML(T(t.value), false));
    h += row('upstream', 'upstream \u2202L/\u2202' + y, k === 0 && j === 0 ? ' (the seed)' : '',
             upj ? tableHTML(upj, true) : '<span class="muted">none: nothing downstream used this output</span>');
    h += '</section>';
  });
  if (outIds.length > 1) {
    h += '<p class="note">This op has ' + outIds.length + ' outputs: each input receives the sum of what every ' +
         'output\u2019s upstream gradient sends through it, so the local derivative is a Jacobian per output.</p>';
  }
  var up = T(ups[0]);
  s.inputs.forEach(function (input) {
    var t = byId[input.tensor];
    var head = '<h3><span class="role">input ' + input.input + '</span>' + esc(displayName(t)) + ' <span class="muted">' +
               esc(kindWord(t)) + ' ' + esc(shapeText(t.shape)) + '</span></h3>';
    if (!input.grad) {
      h += '<section class="io nograd">' + head + row('value', 'value x', '', tableHTML(T(t.value), false)) +
           '<p class="note">' + (input.needs_grad ? 'No gradient sent.' : 'Needs no gradient: nothing is sent.') + '</p></section>';
      return;
    }
    var local = T(input.local_derivative), sent = T(input.grad);
    h += '<section class="io in">' + head;
    h += row('value', 'value x', '', tableHTML(T(t.value), false));
    if (local && local.flat && local.flat.length > 0 && local.flat.every(function (v) { return v === null; })) {
      h += row('local', 'local \u2202y/\u2202x', '', '<span class="muted">not known here: the upstream gradient is 0, ' +
               'and the trace reads the local derivative as sent / upstream</span>');
    } else if (local) {
      h += row('local', 'local \u2202y/\u2202x', '', tableHTML(local, false) + '<span class="rule">' + esc(input.local_rule) + '</span>');
    } else {
      h += row('local', 'local \u2202y/\u2202x', '', '<span class="muted">a Jacobian, not one number per element: ' +
               'follow the formula above</span>');
    }
    h += row('sent', 'sent \u2202L/\u2202x', '', tableHTML(sent, true));
    var eq = chainEquation(up, local, sent);
    if (eq) h += '<div class="equation">' + esc(eq) + '</div>';
    var all = contributions[t.id] || [];
    if (all.length > 1) {
      var mine = all.filter(function (c) { return c.step <= k; }).length;
      h += '<p class="note">Contribution ' + mine + ' of ' + all.length + ' to the gradient of ' + esc(displayName(t)) +
           ': ' + (t.kind === 'leaf' ? 'they add up in its .grad.' : 'they add up before its own op runs.') + '</p>';
    } else if (t.kind === 'leaf') {
      h += '<p class="note">A parameter: this is its gradient (.grad), what an optimizer steps with.</p>';
    }
    h += '</section>';
  });
  return h;
}

// ------------------------------------------------------------ stepping

var current = -1;
var last = Math.max(0, steps.length - 1);
var slider = $('slider');
slider.max = String(last);

function show(k) {
  k = Math.max(0, Math.min(last, Math.round(Number(k) || 0)));
  current = k;
  var s = steps[k];
  var inputs = {}, outputs = {};  // input tensor -> does it receive a gradient here; the step's outputs
  if (s) (s.outputs || [s.output]).forEach(function (id) { outputs[id] = true; });
  if (s) s.inputs.forEach(function (input) { inputs[input.tensor] = inputs[input.tensor] || !!input.grad; });
  ops.forEach(function (o) {
    var el = elements[o.id], j = stepOfOp[o.id];
    el.classList.toggle('current', j === k && !!s);
    el.classList.toggle('done', j !== undefined && j < k);
  });
  tensors.forEach(function (t) {
    var el = elements[t.id], m = models[t.id];
    var isOut = outputs[t.id] === true;
    el.classList.toggle('is-out', isOut);
    el.classList.toggle('is-in', inputs[t.id] === true && !isOut);
    el.classList.toggle('is-in-nograd', inputs[t.id] === false && !isOut);
    var g = gradAt(t.id, s ? k : -1);
    var cap = $('gc-' + t.id);
    cap.textContent = g && !g.complete ? 'gradient ' + g.count + '/' + g.total : 'gradient';
    cap.setAttribute('class', 'cap' + (g ? (g.complete ? ' has' : ' partial') : ''));
    $('gv-' + t.id).innerHTML = (contributions[t.id] || []).length === 0 && t.kind === 'constant'
        ? '<text class="num none" x="0" y="11">none</text>'
        : miniSVG(m.plan, g ? g.tensor : null, true);
  });
  edgeElements.forEach(function (item) {
    var e = item.edge, el = item.el;
    if (!el) return;
    var opId = e.input === null ? e.from : e.to;
    var j = stepOfOp[opId];
    var curIn = s && e.to === s.op && inputs[e.from] === true;
    el.classList.toggle('cur-nograd', !!(s && e.to === s.op && inputs[e.from] === false));
    var curOut = s && e.from === s.op;
    el.classList.toggle('cur-in', !!curIn);
    el.classList.toggle('cur-out', !!curOut);
    el.classList.toggle('done', j !== undefined && j < k);
  });
  $('panel').innerHTML = panelHTML(k);
  slider.value = String(k);
  $('step-label').innerHTML = steps.length ? 'Step ' + k + ' <small>of 0\u2013' + last + '</small>' : 'no steps';
  $('prev').disabled = k <= 0;
  $('reset').disabled = k <= 0;
  $('next').disabled = k >= last;
  document.body.dataset.step = String(steps.length ? k : -1);
  document.body.dataset.op = s ? s.op : '';
  if (s && elements[s.op]) scrollToNode(elements[s.op]);
  try {
    if (history.replaceState) history.replaceState(null, '', '#step=' + k);
  } catch (ignored) { /* some file:// setups forbid it; the page works without */ }
}

// Keeps the current op in view when the graph is larger than its pane.
function scrollToNode(el) {
  var pane = $('graph-scroll');
  if (pane.scrollHeight <= pane.clientHeight && pane.scrollWidth <= pane.clientWidth) return;
  var box = el.getBoundingClientRect(), view = pane.getBoundingClientRect();
  var margin = 80;
  if (box.top < view.top + margin || box.bottom > view.bottom - margin) {
    pane.scrollTop += box.top - view.top - view.height / 2 + box.height / 2;
  }
  if (box.left < view.left + margin || box.right > view.right - margin) {
    pane.scrollLeft += box.left - view.left - view.width / 2 + box.width / 2;
  }
}

var timer = null;
function stopPlaying() {
  if (timer !== null) clearInterval(timer);
  timer = null;
  $('play').textContent = 'Play';
}
function go(k) { stopPlaying(); show(k); }
$('prev').addEventListener('click', function () { go(current - 1); });
$('next').addEventListener('click', function () { go(current + 1); });
$('reset').addEventListener('click', function () { go(0); });
slider.addEventListener('input', function () { go(slider.value); });
$('play').addEventListener('click', function () {
  if (timer !== null) { stopPlaying(); return; }
  if (current >= last) show(0);
  $('play').textContent = 'Pause';
  timer = setInterval(function () {
    if (current >= last) { stopPlaying(); return; }
    show(current + 1);
  }, 1400);
});
document.addEventListener('keydown', function (e) {
  if (e.target === slider || e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key === 'ArrowRight' || e.key === 'ArrowDown' || e.key === 'PageDown') go(current + 1);
  else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp' || e.key === 'PageUp') go(current - 1);
  else if (e.key === 'Home') go(0);
  else if (e.key === 'End') go(last);
  else return;
  e.preventDefault();
});
svg.addEventListener('click', function (e) {  // click an op: jump to its step
  var el = e.target.closest ? e.target.closest('.onode') : null;
  if (el && stepOfOp[el.dataset.id] !== undefined) go(stepOfOp[el.dataset.id]);
});

// "?step=N" or "#step=N" (the fragment wins); "press=next,prev,reset,end,
// right,left,slider:N" then drives the controls, for tests.
function param(name) {
  var found = null;
  [location.search, location.hash].forEach(function (part) {
    var m = new RegExp('[?#&]' + name + '=([^&#]*)').exec(part);
    if (m) found = decodeURIComponent(m[1]);
  });
  return found;
}
var start = param('step');
applyZoom();
show(start !== null && /^\d+$/.test(start) ? Number(start) : (opts.start_step || 0));
var press = param('press');
if (press) {
  press.split(',').forEach(function (action) {
    if (action === 'next' || action === 'prev' || action === 'reset') $(action).click();
    else if (action === 'end') document.dispatchEvent(new KeyboardEvent('keydown', {key: 'End'}));
    else if (action === 'right') document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}));
    else if (action === 'left') document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowLeft'}));
    else if (action.indexOf('slider:') === 0) {
      slider.value = action.slice(7);
      slider.dispatchEvent(new Event('input'));
    } else throw new Error('unknown press action: ' + action);
  });
}
document.body.dataset.steps = String(steps.length);
document.body.dataset.ready = '1';
})();
</script>
</body>
</html>
)tgpage";

std::string html_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON inside <script>: the HTML parser ends the element at the first
// "</script" whatever the quotes, and "<!--" changes how it scans. In JSON,
// '<', '>' and '&' can only occur inside strings, where \u escapes mean
// the same characters to JSON.parse.
std::string script_safe_json(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 16);
  for (const char c : json) {
    switch (c) {
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string options_json(const PageOptions& options) {
  std::string out = "{\"title\":";
  json_string(out, options.title);
  out += ",\"precision\":" + std::to_string(options.precision);
  out += ",\"max_elements\":" + std::to_string(options.max_elements);
  out += ",\"start_step\":" + std::to_string(options.start_step) + "}";
  return out;
}

// Appends `text` with each @@NAME@@ replaced by its value.
void fill(std::string& out, std::string_view text,
          const std::vector<std::pair<std::string_view, std::string>>& values) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t open = text.find("@@", at);
    if (open == std::string_view::npos) break;
    const std::size_t close = text.find("@@", open + 2);
    if (close == std::string_view::npos) break;
    const std::string_view name = text.substr(open + 2, close - open - 2);
    bool replaced = false;
    for (const auto& [key, value] : values) {
      if (key == name) {
        out.append(text.substr(at, open - at));
        out += value;
        at = close + 2;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.append(text.substr(at, open + 2 - at));
      at = open + 2;
    }
  }
  out.append(text.substr(at));
}

}  // namespace

std::string backprop_page_html(const BackwardTrace& trace, const PageOptions& options) {
  if (options.precision < 1 || options.precision > 17) {
    throw_invalid("backprop_page_html", "precision must be in [1, 17], got ", options.precision);
  }
  if (options.max_elements < 0) {
    throw_invalid("backprop_page_html", "max_elements must be >= 0, got ", options.max_elements);
  }
  const std::vector<std::pair<std::string_view, std::string>> values = {
      {"TITLE", html_escape(options.title)},
      {"DESCRIPTION", html_escape(options.description)},
      {"TRACE_JSON", script_safe_json(trace.json(options.max_elements))},
      {"OPTIONS_JSON", script_safe_json(options_json(options))},
  };
  std::string html;
  html.reserve(kHead.size() + kBody.size() + kScript.size() + values[2].second.size() + 1024);
  fill(html, kHead, values);
  fill(html, kBody, values);
  fill(html, kScript, values);
  return html;
}

void write_backprop_page(const std::string& path, const BackwardTrace& trace, const PageOptions& options) {
  const std::string html = backprop_page_html(trace, options);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error)
      throw_runtime("write_backprop_page", "cannot create directory '", parent.string(), "': ", error.message());
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) throw_runtime("write_backprop_page", "cannot write '", path, "': ", std::strerror(errno));
  file << html;
  if (!file.flush()) throw_runtime("write_backprop_page", "cannot write '", path, "'");
}

}  // namespace tapegrad::tools
