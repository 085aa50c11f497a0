use std::collections::HashMap;
use std::fmt;

pub struct Stack {
    items: Vec<i32>,
}

enum Kind {
    A,
    B,
}

pub trait Shape {
    fn area(&self) -> f64;
}

impl Stack {
    pub fn push(&mut self, v: i32) {
        self.items.push(v);
    }
}

fn main() {
    let m: HashMap<i32, i32> = HashMap::new();
    let c = |x: i32| x + 1;
    println!("{}", c(1));
}
