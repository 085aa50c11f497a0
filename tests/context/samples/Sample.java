package demo;

import java.util.List;
import java.util.ArrayList;

public class Sample {
    private final List<Integer> items = new ArrayList<>();

    public Sample() {
    }

    public int total() {
        return items.stream().mapToInt(i -> i).sum();
    }

    interface Visitor {
        void visit(int x);
    }

    enum Kind { A, B }

    record Pair(int a, int b) {}
}
