#include <vector>
#include "counter.hpp"

using std::vector;

namespace util {

class Counter {
 public:
  Counter();
  void inc() { n_++; }
  int get() const;

 private:
  int n_ = 0;
};

struct Pair {
  int a, b;
};

}  // namespace util

util::Counter::Counter() {}

int util::Counter::get() const {
  return n_;
}

template <typename T>
T twice(T x) {
  return x * 2;
}

int main() {
  auto f = [](int x) { return x; };
  return f(twice(1));
}

static int *make_ptr(int v) {
  return new int(v);
}

const std::vector<int> &items_ref(const std::vector<int> &v) {
  return v;
}
