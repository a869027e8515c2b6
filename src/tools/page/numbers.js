// The backprop page's numbers: formatting, shapes and colours. Pure
// functions, so that node's test runner checks them without a browser
// (tests/page/numbers.test.js); the page runs this file before its script.
var tapegradNumbers = (function () {
'use strict';

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

return {toNum: toNum, trimZeros: trimZeros, fmt: fmt, numel: numel, shapeText: shapeText, flatten: flatten,
        grid: grid, maxAbs: maxAbs, heat: heat, esc: esc};
})();
if (typeof module !== 'undefined') module.exports = tapegradNumbers;
