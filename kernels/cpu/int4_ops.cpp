// Torch bindings: registers the codegeex_lsp:: ops (CPU kernels) when codegeex_lsp._kernels is imported.
// The fake (meta) kernels, the CUDA/Triton kernels and the no-compiler fallback live in
// codegeex_lsp/quant/ops.py, which defines the same schemas when this extension is missing.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <atomic>
#include <string>
#include <vector>

#include "cpu/int4_dispatch.h"

namespace cg_q4 {

// The CPU paths of int4_kernels.h; the default op runs the active one (best the CPU supports, or
// what set_path chose: CODEGEEX_LSP_CPU_KERNEL through codegeex_lsp/quant/ops.py).
constexpr const char* kImplNames[] = {"ref", "avx2", "avx512"};

bool compiled(Impl impl) {
#if defined(CG_Q4_X86_SIMD)
    (void)impl;
    return true;
#else
    return impl == Impl::kRef;
#endif
}

bool supported(Impl impl) {
    switch (impl) {
        case Impl::kAvx512: return compiled(impl) && cg_cpu_has_avx512();
        case Impl::kAvx2: return compiled(impl) && cg_cpu_has_avx2();
        default: return true;
    }
}

Impl best_impl() {
    if (supported(Impl::kAvx512)) return Impl::kAvx512;
    if (supported(Impl::kAvx2)) return Impl::kAvx2;
    return Impl::kRef;
}

std::atomic<int> g_active{static_cast<int>(best_impl())};

Impl active_impl() { return static_cast<Impl>(g_active.load(std::memory_order_relaxed)); }

Impl parse_impl(c10::string_view name) {
    if (name == "auto") return static_cast<Impl>(g_active.load(std::memory_order_relaxed));
    for (int i = 0; i < 3; ++i) {
        if (name == kImplNames[i]) {
            const Impl impl = static_cast<Impl>(i);
            TORCH_CHECK(compiled(impl), "codegeex_lsp: impl='", std::string(name),
                        "' is not compiled into this build (x86-64 GCC/Clang only)");
            TORCH_CHECK(supported(impl), "codegeex_lsp: impl='", std::string(name), "' needs ",
                        impl == Impl::kAvx2 ? "AVX2/FMA/F16C" : "AVX-512 F/BW/VL + VNNI",
                        ", which this CPU lacks");
            return impl;
        }
    }
    TORCH_CHECK(false, "codegeex_lsp: impl must be auto|ref|avx2|avx512, got '", std::string(name), "'");
}

std::string set_path(const std::string& name) {
    const Impl impl = name == "auto" ? best_impl() : parse_impl(name);
    g_active.store(static_cast<int>(impl), std::memory_order_relaxed);
    return kImplNames[static_cast<int>(impl)];
}

std::string active_path() { return kImplNames[g_active.load(std::memory_order_relaxed)]; }

std::vector<std::string> paths(bool only_supported) {
    std::vector<std::string> out;
    for (int i = 0; i < 3; ++i) {
        const Impl impl = static_cast<Impl>(i);
        if (only_supported ? supported(impl) : compiled(impl)) out.emplace_back(kImplNames[i]);
    }
    return out;
}

void quantize_rows(Impl impl, const float* x, int64_t M, int64_t K, int8_t* qa, float* da, float* asum) {
#if defined(CG_Q4_X86_SIMD)
    if (impl == Impl::kAvx512) return cg_q8_quantize_rows_avx512(x, M, K, qa, da, asum);
    if (impl == Impl::kAvx2) return cg_q8_quantize_rows_avx2(x, M, K, qa, da, asum);
#endif
    cg_q8_quantize_rows_ref(x, M, K, qa, da, asum);
}

void gemm_rows(Impl impl, const cg_q8_act* act, int64_t M, const uint8_t* w, const uint8_t* r, int64_t K, int64_t G,
               int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy) {
#if defined(CG_Q4_X86_SIMD)
    if (impl == Impl::kAvx512) return cg_q4_gemm_rows_avx512(act, M, w, r, K, G, n0, n1, bias, y, ldy);
    if (impl == Impl::kAvx2) return cg_q4_gemm_rows_avx2(act, M, w, r, K, G, n0, n1, bias, y, ldy);
#endif
    cg_q4_gemm_rows_ref(act, M, w, r, K, G, n0, n1, bias, y, ldy);
}

void dequant_rows(Impl impl, const uint8_t* w, int64_t K, int64_t G, int64_t n0, int64_t n1, float* out) {
#if defined(CG_Q4_X86_SIMD)
    if (impl == Impl::kAvx512) return cg_q4_dequant_rows_avx512(w, K, G, n0, n1, out);
    if (impl == Impl::kAvx2) return cg_q4_dequant_rows_avx2(w, K, G, n0, n1, out);
#endif
    cg_q4_dequant_rows_ref(w, K, G, n0, n1, out);
}

}  // namespace cg_q4

namespace {

using cg_q4::Impl;
using cg_q4::active_impl;
using cg_q4::dequant_rows;
using cg_q4::gemm_rows;
using cg_q4::parse_impl;
using cg_q4::quantize_rows;
using cg_q4::active_path;
using cg_q4::paths;
using cg_q4::set_path;

void check_packed(const at::Tensor& packed, int64_t K, int64_t G) {
    TORCH_CHECK(G == 32 || G == 64 || G == 128, "codegeex_lsp: group_size must be 32, 64 or 128, got ", G);
    TORCH_CHECK(K > 0 && K % G == 0, "codegeex_lsp: in_features ", K, " is not a multiple of group_size ", G);
    TORCH_CHECK(packed.device().is_cpu() && packed.scalar_type() == at::kByte && packed.dim() == 2,
                "codegeex_lsp: packed weight must be a 2-D uint8 CPU tensor");
    TORCH_CHECK(packed.size(1) == cg_q4_row_bytes(K, G), "codegeex_lsp: packed row is ", packed.size(1),
                " bytes, layout v", CG_Q4_LAYOUT_VERSION, " needs ", cg_q4_row_bytes(K, G), " for K=", K, " G=", G);
    TORCH_CHECK(packed.is_contiguous(), "codegeex_lsp: packed weight must be contiguous");
}

// Rows per parallel task: enough work to amortize the fork, small enough to split 896 rows.
constexpr int64_t kGrainRows = 64;
constexpr int64_t kGrainActRows = 16;

at::Tensor dequantize(const at::Tensor& packed, int64_t K, int64_t G, Impl impl) {
    check_packed(packed, K, G);
    const int64_t N = packed.size(0);
    at::Tensor out = at::empty({N, K}, packed.options().dtype(at::kFloat));
    const uint8_t* w = packed.data_ptr<uint8_t>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, N, kGrainRows, [&](int64_t b, int64_t e) { dequant_rows(impl, w, K, G, b, e, o + b * K); });
    return out;
}

// x2 [M, K] fp32 -> (qa [M, K] int8 in kernel order, da [M, K / 32], asum [M, K / 32])
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_act(const at::Tensor& x2, Impl impl) {
    const int64_t M = x2.size(0), K = x2.size(1);
    at::Tensor qa = at::empty({M, K}, x2.options().dtype(at::kChar));
    at::Tensor da = at::empty({M, K / CG_Q4_ACT_BLOCK}, x2.options());
    at::Tensor asum = at::empty({M, K / CG_Q4_ACT_BLOCK}, x2.options());
    const float* x = x2.data_ptr<float>();
    int8_t* q = qa.data_ptr<int8_t>();
    float* d = da.data_ptr<float>();
    float* s = asum.data_ptr<float>();
    const int64_t nb = K / CG_Q4_ACT_BLOCK;
    // rows are independent; a prefill chunk's rows split over the threads (decode's one row does not)
    at::parallel_for(0, M, kGrainActRows, [&](int64_t b, int64_t e) {
        quantize_rows(impl, x + b * K, e - b, K, q + b * K, d + b * nb, s + b * nb);
    });
    return {qa, da, asum};
}

at::Tensor gemm(const at::Tensor& x, const at::Tensor& packed, int64_t K, int64_t G,
                const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& residual, Impl impl) {
    check_packed(packed, K, G);
    TORCH_CHECK(x.device().is_cpu() && x.size(-1) == K, "codegeex_lsp: x must be a CPU tensor [..., ", K, "]");
    TORCH_CHECK(at::isFloatingType(x.scalar_type()), "codegeex_lsp: x must be floating point");
    const int64_t N = packed.size(0);
    const bool has_residual = residual.has_value() && residual->defined();
    if (has_residual) {
        check_packed(*residual, K, G);
        TORCH_CHECK(residual->size(0) == N, "codegeex_lsp: residual plane has ", residual->size(0),
                    " rows, the weight ", N);
    }
    const at::Tensor x2 = x.reshape({-1, K}).to(at::kFloat).contiguous();  // [M, K]
    const int64_t M = x2.size(0);
    at::Tensor b;
    if (bias.has_value() && bias->defined()) {
        TORCH_CHECK(bias->numel() == N, "codegeex_lsp: bias has ", bias->numel(), " elements, expected ", N);
        b = bias->to(at::kFloat).contiguous();
    }
    // Any number of rows takes the int8 path: its integer dot products outrun an fp32 GEMM on
    // the dequantized weight even for prefill-sized M (`bench kernels --rows 256`), and the kernels block
    // over output rows so the weights stream once whatever M is.
    at::Tensor y = at::empty({M, N}, x2.options());
    if (M > 0) {
        auto [qa, da, asum] = quantize_act(x2, impl);
        const cg_q8_act act{qa.data_ptr<int8_t>(), da.data_ptr<float>(), asum.data_ptr<float>()};
        const uint8_t* w = packed.data_ptr<uint8_t>();
        const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
        float* yp = y.data_ptr<float>();
        const uint8_t* r = has_residual ? residual->data_ptr<uint8_t>() : nullptr;
        at::parallel_for(0, N, kGrainRows,
                         [&](int64_t n0, int64_t n1) { gemm_rows(impl, &act, M, w, r, K, G, n0, n1, bp, yp, N); });
    }
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = N;
    return y.view(shape).to(x.scalar_type());
}

at::Tensor int4_gemm(const at::Tensor& x, const at::Tensor& packed, int64_t K, int64_t G,
                     const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& residual) {
    return gemm(x, packed, K, G, bias, residual, parse_impl("auto"));
}

at::Tensor int4_gemm_impl(const at::Tensor& x, const at::Tensor& packed, int64_t K, int64_t G,
                          const std::optional<at::Tensor>& bias, c10::string_view impl,
                          const std::optional<at::Tensor>& residual) {
    return gemm(x, packed, K, G, bias, residual, parse_impl(impl));
}

at::Tensor int4_dequantize(const at::Tensor& packed, int64_t K, int64_t G) {
    return dequantize(packed, K, G, parse_impl("auto"));
}

at::Tensor int4_dequantize_impl(const at::Tensor& packed, int64_t K, int64_t G, c10::string_view impl) {
    return dequantize(packed, K, G, parse_impl(impl));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_quantize_activations(const at::Tensor& x, c10::string_view impl) {
    TORCH_CHECK(x.dim() == 2 && x.size(1) % CG_Q4_ACT_BLOCK == 0, "codegeex_lsp: x must be [M, K], K % 32 == 0");
    return quantize_act(x.to(at::kFloat).contiguous(), parse_impl(impl));
}

}  // namespace

TORCH_LIBRARY(codegeex_lsp, m) {
    m.def("int4_gemm(Tensor x, Tensor packed, int in_features, int group_size, Tensor? bias=None,"
          " Tensor? residual=None) -> Tensor");
    m.def("int4_gemm_impl(Tensor x, Tensor packed, int in_features, int group_size, Tensor? bias, str impl,"
          " Tensor? residual=None) -> Tensor");
    m.def("int4_dequantize(Tensor packed, int in_features, int group_size) -> Tensor");
    m.def("int4_dequantize_impl(Tensor packed, int in_features, int group_size, str impl) -> Tensor");
    m.def("int8_quantize_activations(Tensor x, str impl) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(codegeex_lsp, CPU, m) {
    m.impl("int4_gemm", &int4_gemm);
    m.impl("int4_gemm_impl", &int4_gemm_impl);
    m.impl("int4_dequantize", &int4_dequantize);
    m.impl("int4_dequantize_impl", &int4_dequantize_impl);
    m.impl("int8_quantize_activations", &int8_quantize_activations);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "codegeex_lsp int4 CPU kernels; importing registers the torch.ops.codegeex_lsp ops";
    m.attr("LAYOUT_VERSION") = CG_Q4_LAYOUT_VERSION;
    m.def("compiled_paths", [] { return paths(false); }, "the CPU paths in this build, slowest first");
    m.def("supported_paths", [] { return paths(true); }, "the compiled paths this CPU can run");
    m.def("active_path", &active_path, "the path the default ops run now");
    m.def("set_path", &set_path, "make `name` (auto|ref|avx2|avx512) the default ops' path; returns it",
          pybind11::arg("name"));
}
