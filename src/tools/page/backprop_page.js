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

// numbers.js, run just before this script.
var numbers = tapegradNumbers;
var toNum = numbers.toNum, fmt = numbers.fmt, numel = numbers.numel, shapeText = numbers.shapeText;
var flatten = numbers.flatten, grid = numbers.grid, maxAbs = numbers.maxAbs, heat = numbers.heat, esc = numbers.esc;

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
