import { readFileSync } from "fs";
import * as os from "os";

export function parse(text: string): number {
  return Number(text);
}

const double = (x: number): number => x * 2;

interface Shape {
  area(): number;
}

type Point = { x: number; y: number };

enum Color {
  Red,
}

export class Circle implements Shape {
  constructor(private r: number) {}
  area(): number {
    return Math.PI * this.r ** 2;
  }
}

abstract class Base {
  abstract describe(): string;
}
