import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** A warehouse inventory: items by SKU, stock levels, reservations and a reorder report. */
public class Inventory {
    public static final class Item {
        private final String sku;
        private final String name;
        private int stock;
        private int reserved;
        private final int reorderLevel;

        public Item(String sku, String name, int stock, int reorderLevel) {
            this.sku = sku;
            this.name = name;
            this.stock = stock;
            this.reorderLevel = reorderLevel;
        }

        public String getSku() {
            return sku;
        }

        public String getName() {
            return name;
        }

        public int available() {
            return stock - reserved;
        }

        public boolean needsReorder() {
            return available() <= reorderLevel;
        }
    }

    private final Map<String, Item> items = new HashMap<>();

    public void add(Item item) {
        if (items.containsKey(item.getSku())) {
            throw new IllegalArgumentException("duplicate sku " + item.getSku());
        }
        items.put(item.getSku(), item);
    }

    public Optional<Item> find(String sku) {
        return Optional.ofNullable(items.get(sku));
    }

    public boolean reserve(String sku, int quantity) {
        Item item = items.get(sku);
        if (item == null || quantity <= 0 || item.available() < quantity) {
            return false;
        }
        item.reserved += quantity;
        return true;
    }

    public void ship(String sku, int quantity) {
        Item item = items.get(sku);
        if (item == null || item.reserved < quantity) {
            throw new IllegalStateException("cannot ship " + quantity + " of " + sku);
        }
        item.reserved -= quantity;
        item.stock -= quantity;
    }

    public List<Item> reorderReport() {
        List<Item> report = new ArrayList<>();
        for (Item item : items.values()) {
            if (item.needsReorder()) {
                report.add(item);
            }
        }
        report.sort((a, b) -> Integer.compare(a.available(), b.available()));
        return Collections.unmodifiableList(report);
    }

    public int totalAvailable() {
        int total = 0;
        for (Item item : items.values()) {
            total += item.available();
        }
        return total;
    }
}
