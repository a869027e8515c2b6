// The backprop page's number helpers (src/tools/page/numbers.js), under
// node's test runner: ctest runs `node --test` on this file when node is
// installed. The page itself is checked in a browser by test_backprop_page.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const numbers = require('../../src/tools/page/numbers.js');

const MINUS = '\u2212';

test('toNum reads the JSON forms of numbers, infinities and NaN', () => {
  assert.equal(numbers.toNum(2.5), 2.5);
  assert.equal(numbers.toNum('Infinity'), Infinity);
  assert.equal(numbers.toNum('-Infinity'), -Infinity);
  assert.ok(Number.isNaN(numbers.toNum('NaN')));
  assert.ok(Number.isNaN(numbers.toNum(null)));  // an undefined local derivative
});

test('fmt is printf %g with p significant digits and a real minus sign', () => {
  assert.equal(numbers.fmt(0.5, 6), '0.5');
  assert.equal(numbers.fmt(-0.25, 6), MINUS + '0.25');
  assert.equal(numbers.fmt(1 / 3, 4), '0.3333');
  assert.equal(numbers.fmt(123456, 6), '123456');
  assert.equal(numbers.fmt(1234567, 6), '1.23457e6');  // past 10^p: exponent form
  assert.equal(numbers.fmt(0.0001, 6), '0.0001');
  assert.equal(numbers.fmt(0.00001234, 3), '1.23e' + MINUS + '5');  // below 1e-4
  assert.equal(numbers.fmt(-2e-7, 6), MINUS + '2e' + MINUS + '7');
  assert.equal(numbers.fmt(100, 2), '1e2');
  assert.equal(numbers.fmt(0, 6), '0');
  assert.equal(numbers.fmt('NaN', 6), 'nan');
  assert.equal(numbers.fmt('Infinity', 6), '\u221E');
  assert.equal(numbers.fmt('-Infinity', 6), MINUS + '\u221E');
  assert.equal(numbers.fmt(null, 6), '\u2014');
  assert.equal(numbers.fmt(undefined, 6), '\u2014');
});

test('trimZeros drops trailing zeros of a decimal only', () => {
  assert.equal(numbers.trimZeros('1.2500'), '1.25');
  assert.equal(numbers.trimZeros('3.000'), '3');
  assert.equal(numbers.trimZeros('1200'), '1200');
});

test('shapes: element counts, labels, flattening and table grids', () => {
  assert.equal(numbers.numel([]), 1);
  assert.equal(numbers.numel([2, 3, 4]), 24);
  assert.equal(numbers.numel([3, 0]), 0);
  assert.equal(numbers.shapeText([]), 'scalar');
  assert.equal(numbers.shapeText([2, 3]), '[2\u00D73]');
  assert.deepEqual(numbers.flatten([[1, 2], [3, [4, 5]]], []), [1, 2, 3, 4, 5]);
  assert.deepEqual(numbers.flatten(7, []), [7]);
  assert.deepEqual(numbers.grid([]), {rows: 1, cols: 1});
  assert.deepEqual(numbers.grid([5]), {rows: 1, cols: 5});
  assert.deepEqual(numbers.grid([2, 3, 4]), {rows: 6, cols: 4});
  assert.deepEqual(numbers.grid([0]), {rows: 1, cols: 1});  // an empty tensor still gets a cell
});

test('maxAbs skips infinities and NaN, so one bad value does not wash out the colours', () => {
  assert.equal(numbers.maxAbs([1, -3, 2]), 3);
  assert.equal(numbers.maxAbs([1, 'Infinity', 'NaN', null, -0.5]), 1);
  assert.equal(numbers.maxAbs([]), 0);
});

test('heat tints positives red and negatives blue by |x| / scale', () => {
  assert.equal(numbers.heat(1, 1, 0.5), 'rgba(220,38,38,0.560)');
  assert.equal(numbers.heat(-0.5, 1, 0.5), 'rgba(37,99,235,0.310)');
  assert.equal(numbers.heat(0, 1, 0.5), 'rgba(220,38,38,0.060)');
  assert.equal(numbers.heat(10, 1, 0.5), 'rgba(220,38,38,0.560)');  // capped at the scale
  assert.equal(numbers.heat(2, 0, 0.5), 'rgba(220,38,38,0.060)');   // no scale: faint
  assert.equal(numbers.heat('NaN', 1, 0.5), 'rgba(156,163,175,0.25)');
  assert.equal(numbers.heat(null, 1, 0.5), 'rgba(156,163,175,0.25)');
  assert.equal(numbers.heat('Infinity', 1, 0.5), 'rgba(250,204,21,0.8)');
});

test('esc makes any text safe inside HTML', () => {
  assert.equal(numbers.esc('<b a="1">&\'</b>'), '&lt;b a=&quot;1&quot;&gt;&amp;&#39;&lt;/b&gt;');
  assert.equal(numbers.esc(42), '42');
});
