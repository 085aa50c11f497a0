class Cart {
  constructor() {
    this.items = [];
  }

  add(name, price, quantity = 1) {
    this.items.push({ name, price, quantity });
  }

  total() {
    let sum = 0;
    for (const item of this.items) {
      █
    }
    return sum;
  }
}

module.exports = { Cart };
