import fs from "fs";
const path = require("path");

function add(a, b) {
  return a + b;
}

function* gen() {
  yield 1;
}

const arrow = (x) => x * 2;
var legacy = function () {};

class Counter {
  increment() {
    this.n += 1;
  }
}

const notAnImport = load("path");
