class Cart {
  constructor() {
    this.items = [];
  }

  add(name, price, quantity = 1) {
    this.items.push({ name, price, quantity });
  }

  total() {
    return this.items.reduce((sum, item) => █, 0);
  }
}

module.exports = { Cart };
