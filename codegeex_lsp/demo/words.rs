use std::collections::HashMap;

/// Count how often each whitespace-separated word occurs in `text`.
fn word_counts(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for word in text.split_whitespace() {
        █
    }
    counts
}

fn main() {
    let counts = word_counts("the cat and the hat");
    println!("{:?}", counts.get("the"));
}
