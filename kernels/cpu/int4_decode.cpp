// One decode step of an int4 model in one call: torch.classes.codegeex_lsp.Int4DecodePlan.
//
// Why: a decode step of the 0.5B model streams ~360 MB of int4 weights in ~11 ms on 2 cores, but
// the step run op by op from Python took ~23 ms: ~1,000 small ATen ops per token (norms, rotary,
// cache writes, attention, residual adds, dtype casts) cost as much as the weights. Here the whole
// step is one C++ loop over the layers; the GEMVs are the same kernels as torch.ops.codegeex_lsp
// (the active CPU path), the rest is plain loops over a few thousand floats.
//
// Numerics follow codegeex_lsp/engine/model.py, where int4 models run in fp32 (activations, norms,
// KV cache): the same operations in the same order per value; only the order of float sums inside a
// norm or an attention row differs, so a step's logits agree to float noise with the op-by-op path,
// unless a value sits on a rounding boundary of the int8 activations (tests/engine/test_fused_decode.py).
//
// The plan covers the models engine/fused_decode.py accepts: pre-norm blocks (no post-norms), SiLU
// gated FFN, rotary (halves or interleaved pairs, full or partial), fused q|k|v with optional bias,
// optional residual int4 planes, an optional screened lm head (quant/screened_head.py: an int4 screen
// over projected inputs, then its best candidates rescored exactly from 8-bit rows); one sequence,
// one token per step.
#include <ATen/Parallel.h>
#include <torch/custom_class.h>
#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "cpu/int4_dispatch.h"

namespace {

constexpr int64_t kChunksPerThread = 8;  // output-row chunks per thread and product, at least (dynamic schedule)
constexpr int64_t kMinChunkRows = 32;
// An optional bound on a chunk's weight bytes (set_chunk_bytes; 0 = none, the default). Smaller chunks
// would shorten the wait at each product's barrier, but measured on the 0.5B model (2 threads, AVX-512
// host, interleaved runs) they cost more than they save: 64 KB chunks decoded at 0.77-0.85x, 256 KB at 0.97x,
// 1-4 MB at 1.01x (noise) of no bound. Kept settable to measure it on other hosts.
constexpr int64_t kDefaultChunkBytes = 0;
constexpr int64_t kMaxRotary = 512;
constexpr int64_t kMaxHeadDim = 512;
constexpr int64_t kMaxGroup = 64;  // query heads per kv head

// exp(x) for x <= 0 (softmax after subtracting the max): 2^(x log2 e) split into an integer power,
// built in the exponent bits, and 2^f on [0, 1) by a degree-6 polynomial (relative error < 1e-5 on
// [-80, 0], where the softmax weights that matter live).
// Plain arithmetic, so the loops that call it vectorize (std::exp does not without -ffast-math).
// p = 2^f for f in [0, 1): the polynomial, for a float or a GCC vector of floats (by reference: a
// vector passed by value would change the calling convention between the clones' ISAs).
template <class T>
__attribute__((always_inline)) inline void exp2_fraction(const T& f, T& p) {
    p = T{} + 1.5353362e-4f;
    p = p * f + 1.3398874e-3f;
    p = p * f + 9.6181291e-3f;
    p = p * f + 5.5503340e-2f;
    p = p * f + 2.4022652e-1f;
    p = p * f + 6.9314712e-1f;
    p = p * f + 1.0f;
}

inline float exp_nonpositive(float x) {
    const float t = std::max(x, -87.0f) * 1.44269504088896341f;  // 2^-125.5: the exponent stays normal
    const float fi = float(int32_t(t) - (t < float(int32_t(t))));  // floor for t <= 0
    float p;
    exp2_fraction(t - fi, p);
    const int32_t bits = (int32_t(fi) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    return p * scale;
}

typedef float v8sf __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));
typedef int8_t v8qi __attribute__((vector_size(8)));
// Unaligned, aliasing-safe access to 8 floats; a type, not a helper function, so no vector crosses a
// call between the clones' ISAs.
typedef float v8sf_u __attribute__((vector_size(32), aligned(4), may_alias));

// a[j] = up[j] * silu(gate[j]) for j < n, silu(g) = g * sigmoid(g) from e = exp(-|g|) (never
// overflows): sigmoid(g) = (g >= 0 ? 1 : e) / (1 + e). Eight at a time on GCC vectors, the same
// float operations per value as exp_nonpositive and the scalar tail: written as a plain loop GCC
// left it scalar (a float-to-int conversion may trap, so it would not if-convert the selects), and
// it took ~2.5 % of a decode step.
__attribute__((target_clones("fma", "default"))) void silu_mul(const float* gate, const float* up, float* a,
                                                                int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const v8sf g = *(const v8sf_u*)(gate + j);
        const v8sf x = g < 0.0f ? g : -g;  // -|g|
        const v8sf t = (x < -87.0f ? v8sf{} - 87.0f : x) * 1.44269504088896341f;
        const v8si ti = __builtin_convertvector(t, v8si);
        const v8sf fi = __builtin_convertvector(ti - (t < __builtin_convertvector(ti, v8sf) ? 1 : 0), v8sf);
        v8sf p;
        exp2_fraction(t - fi, p);
        const v8si bits = (__builtin_convertvector(fi, v8si) + 127) << 23;
        const v8sf e = p * (v8sf)bits;
        const v8sf num = g >= 0.0f ? v8sf{} + 1.0f : e;
        *(v8sf_u*)(a + j) = *(const v8sf_u*)(up + j) * (g * (num / (1.0f + e)));
    }
    for (; j < n; ++j) {
        const float g = gate[j];
        const float e = exp_nonpositive(-std::fabs(g));
        a[j] = up[j] * (g * ((g >= 0.0f ? 1.0f : e) / (1.0f + e)));
    }
}

// The exact logit of head row n: sum over 32-input blocks b of d[b] * (q[b] . h[b]), int8 codes q
// and fp32 scales d, in fp32 with 8 partial sums per block (a plain scalar chain took ~1 % of a step).
__attribute__((target_clones("fma", "default"))) float exact_row_dot(const int8_t* q, const float* d, const float* h,
                                                                     int64_t dim) {
    v8sf acc = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < dim / 32; ++b) {
        v8sf s = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
            v8qi c;
            std::memcpy(&c, q + 32 * b + 8 * i, 8);
            s += __builtin_convertvector(c, v8sf) * *(const v8sf_u*)(h + 32 * b + 8 * i);
        }
        acc += d[b] * s;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Query heads q [nh, Dh] of one kv head against its positions 0..pos: keys/values [L, Dh] rows of the
// cache, except position pos, this step's own k/v (k_new, v_new), which the cache receives meanwhile.
// s [nh, pos + 1] is scratch; out [nh, Dh]. Each key and value row is read once for all nh heads.
// Compiled for AVX + FMA and for any x86-64, picked by CPU feature when the library loads (GCC
// function multiversioning; never by CPU model name, which `arch=` clones test).
__attribute__((target_clones("fma", "default"))) void attend_group(const float* q, int64_t nh, const float* keys,
                                                                    const float* values, const float* k_new,
                                                                    const float* v_new, int64_t pos, int64_t Dh,
                                                                    float* s, float* out) {
    const int64_t n = pos + 1;
    const float scale = float(1.0 / std::sqrt(double(Dh)));
    for (int64_t j = 0; j < n; ++j) {
        const float* kj = j == pos ? k_new : keys + j * Dh;
        for (int64_t h = 0; h < nh; ++h) {
            const float* qh = q + h * Dh;
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t d = 0;
            for (; d + 8 <= Dh; d += 8) {
                for (int u = 0; u < 8; ++u) acc[u] += qh[d + u] * kj[d + u];
            }
            float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (; d < Dh; ++d) dot += qh[d] * kj[d];
            s[h * n + j] = dot * scale;
        }
    }
    float inv_sum[kMaxGroup];
    for (int64_t h = 0; h < nh; ++h) {
        float* sh = s + h * n;
        float m = -INFINITY;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, sh[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
            sh[j] = exp_nonpositive(sh[j] - m);
            sum += sh[j];
        }
        inv_sum[h] = 1.0f / sum;
        std::fill(out + h * Dh, out + (h + 1) * Dh, 0.0f);
    }
    for (int64_t j = 0; j < n; ++j) {
        const float* vj = j == pos ? v_new : values + j * Dh;
        for (int64_t h = 0; h < nh; ++h) {
            const float p = s[h * n + j];
            float* oh = out + h * Dh;
            for (int64_t d = 0; d < Dh; ++d) oh[d] += p * vj[d];
        }
    }
    for (int64_t h = 0; h < nh; ++h) {
        for (int64_t d = 0; d < Dh; ++d) out[h * Dh + d] *= inv_sum[h];
    }
}

// attend_group for head_dim = 8 V with its vectors in registers: the same float operations in the same
// order per value as above (each score an 8-lane FMA sum reduced by the same tree; each softmax sum and
// each output value accumulated position by position), so the results are bit for bit the same; only
// the loops are arranged for the hardware. Per key, one load serves every query head; a head's output
// row stays in registers over a block of kValueBlock positions (the block's values stay in L1) instead
// of being loaded and stored at every position; the exponentials run as a plain elementwise loop, and
// the heads' softmax sums run as independent chains. Measured on the 0.5B model (2 threads, AVX-512
// host; one thread's attention per step, then decode rate): after 1,024 cached positions 2.4 -> 1.95
// ms, 62 -> 65 tok/s; after 3,000, 6.6 -> 5.3 ms, 49 -> 55 tok/s. Logits of 80 steps at 5 and 1,500
// cached positions and of a 5-token step_many at each: bit for bit those of attend_group.
constexpr int64_t kValueBlock = 64;

template <int V>
__attribute__((target_clones("fma", "default"))) void attend_group_fixed(const float* q, int64_t nh,
                                                                          const float* keys, const float* values,
                                                                          const float* k_new, const float* v_new,
                                                                          int64_t pos, float* s, float* out) {
    constexpr int64_t Dh = 8 * V;
    const int64_t n = pos + 1;
    const float scale = float(1.0 / std::sqrt(double(Dh)));
    for (int64_t j = 0; j < n; ++j) {
        const float* kj = j == pos ? k_new : keys + j * Dh;
        v8sf k[V];
#pragma GCC unroll 16
        for (int i = 0; i < V; ++i) k[i] = *(const v8sf_u*)(kj + 8 * i);
        for (int64_t h = 0; h < nh; ++h) {
            const float* qh = q + h * Dh;
            v8sf acc = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma GCC unroll 16
            for (int i = 0; i < V; ++i) acc += *(const v8sf_u*)(qh + 8 * i) * k[i];
            const float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            s[h * n + j] = dot * scale;
        }
    }
    float mx[kMaxGroup], sum[kMaxGroup], inv_sum[kMaxGroup];
    for (int64_t h = 0; h < nh; ++h) {
        const float* sh = s + h * n;
        float m = -INFINITY;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, sh[j]);
        mx[h] = m;
        sum[h] = 0.0f;
    }
    for (int64_t h = 0; h < nh; ++h) {
        float* sh = s + h * n;
        const float m = mx[h];
        for (int64_t j = 0; j < n; ++j) sh[j] = exp_nonpositive(sh[j] - m);
    }
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t h = 0; h < nh; ++h) sum[h] += s[h * n + j];
    }
    for (int64_t h = 0; h < nh; ++h) inv_sum[h] = 1.0f / sum[h];
    for (int64_t j0 = 0; j0 < n; j0 += kValueBlock) {
        const int64_t j1 = std::min(n, j0 + kValueBlock);
        for (int64_t h = 0; h < nh; ++h) {
            const float* sh = s + h * n;
            float* oh = out + h * Dh;
            v8sf acc[V];
#pragma GCC unroll 16
            for (int i = 0; i < V; ++i) acc[i] = j0 == 0 ? v8sf{0, 0, 0, 0, 0, 0, 0, 0} : *(const v8sf_u*)(oh + 8 * i);
            for (int64_t j = j0; j < j1; ++j) {
                const float* vj = j == pos ? v_new : values + j * Dh;
                const float p = sh[j];
#pragma GCC unroll 16
                for (int i = 0; i < V; ++i) acc[i] += p * *(const v8sf_u*)(vj + 8 * i);
            }
#pragma GCC unroll 16
            for (int i = 0; i < V; ++i) *(v8sf_u*)(oh + 8 * i) = j1 == n ? acc[i] * inv_sum[h] : acc[i];
        }
    }
}

// The query heads of one kv head against its positions (see attend_group), on the register-blocked
// form for the usual head sizes.
void attend(const float* q, int64_t nh, const float* keys, const float* values, const float* k_new,
            const float* v_new, int64_t pos, int64_t Dh, float* s, float* out) {
    switch (Dh) {
        case 32: return attend_group_fixed<4>(q, nh, keys, values, k_new, v_new, pos, s, out);
        case 64: return attend_group_fixed<8>(q, nh, keys, values, k_new, v_new, pos, s, out);
        case 128: return attend_group_fixed<16>(q, nh, keys, values, k_new, v_new, pos, s, out);
        default: return attend_group(q, nh, keys, values, k_new, v_new, pos, Dh, s, out);
    }
}

// One QuantLinear: packed codes, an optional residual plane, an optional fp32 bias.
struct QLinear {
    at::Tensor packed, residual, bias;
    int64_t K = 0, N = 0, G = 0;
};

struct Layer {
    at::Tensor attn_norm, ffn_norm;  // fp32 copies of the RMSNorm weights (exact for bf16 ones)
    QLinear qkv, o, gate_up, down;
};

class Int4DecodePlan : public torch::CustomClassHolder {
   public:
    // tensors: per layer [attn_norm, ffn_norm, (packed, residual, bias) x {qkv, o, gate_up, down}],
    //          then [norm, (packed, residual, bias) of the output, cos, sin,
    //          head projection fp32 [dim, R], exact codes int8 [V, dim], exact scales fp32 [V, dim / 32]];
    //          absent parts are empty (the last three for a plain head).
    // ints: [n_layers, dim, n_heads, n_kv_heads, head_dim, rotary_dim, interleaved, hidden,
    //        then (K, G) for each linear in the order above, then (R, candidates): (0, 0) for a plain
    //        head; else the output linear is the screen, with K = R].
    Int4DecodePlan(std::vector<at::Tensor> tensors, std::vector<int64_t> ints, double eps) : eps_(float(eps)) {
        TORCH_CHECK(ints.size() >= 8, "Int4DecodePlan: ints too short");
        n_layers_ = ints[0];
        dim_ = ints[1];
        n_heads_ = ints[2];
        n_kv_ = ints[3];
        head_dim_ = ints[4];
        rotary_dim_ = ints[5];
        interleaved_ = ints[6] != 0;
        hidden_ = ints[7];
        TORCH_CHECK(n_layers_ > 0 && dim_ > 0 && n_heads_ > 0 && n_kv_ > 0 && n_heads_ % n_kv_ == 0,
                    "Int4DecodePlan: bad model shape");
        TORCH_CHECK(n_heads_ / n_kv_ <= kMaxGroup, "Int4DecodePlan: more than ", kMaxGroup, " query heads per kv head");
        TORCH_CHECK(rotary_dim_ > 0 && rotary_dim_ <= head_dim_ && rotary_dim_ % 2 == 0 && rotary_dim_ <= kMaxRotary &&
                        head_dim_ <= kMaxHeadDim,
                    "Int4DecodePlan: bad rotary_dim or head_dim (at most ", kMaxHeadDim, ")");
        const int64_t n_linears = 4 * n_layers_ + 1;
        TORCH_CHECK(int64_t(ints.size()) == 10 + 2 * n_linears, "Int4DecodePlan: expected ", 10 + 2 * n_linears,
                    " ints");
        TORCH_CHECK(int64_t(tensors.size()) == 14 * n_layers_ + 9, "Int4DecodePlan: expected ", 14 * n_layers_ + 9,
                    " tensors");
        screen_dim_ = ints[ints.size() - 2];
        candidates_ = ints[ints.size() - 1];
        TORCH_CHECK(screen_dim_ >= 0 && screen_dim_ <= dim_ && screen_dim_ % CG_Q4_ACT_BLOCK == 0 &&
                        (screen_dim_ == 0) == (candidates_ == 0) && candidates_ >= 0,
                    "Int4DecodePlan: bad screened head (R=", screen_dim_, ", candidates=", candidates_, ")");
        size_t t = 0, i = 8;
        auto linear = [&](int64_t n_expected, int64_t k_expected) {
            QLinear q;
            q.packed = tensors[t++];
            q.residual = tensors[t++];
            q.bias = tensors[t++];
            q.K = ints[i++];
            q.G = ints[i++];
            q.N = q.packed.size(0);
            check_linear(q, n_expected, k_expected);
            return q;
        };
        const int64_t qkv_n = (n_heads_ + 2 * n_kv_) * head_dim_;
        for (int64_t l = 0; l < n_layers_; ++l) {
            Layer layer;
            layer.attn_norm = norm_weight(tensors[t++]);
            layer.ffn_norm = norm_weight(tensors[t++]);
            layer.qkv = linear(qkv_n, dim_);
            layer.o = linear(dim_, n_heads_ * head_dim_);
            layer.gate_up = linear(2 * hidden_, dim_);
            layer.down = linear(dim_, hidden_);
            layers_.push_back(std::move(layer));
        }
        norm_ = norm_weight(tensors[t++]);
        output_ = linear(-1, screen_dim_ ? screen_dim_ : dim_);
        cos_ = tensors[t++].to(at::kFloat).contiguous();
        sin_ = tensors[t++].to(at::kFloat).contiguous();
        proj_ = tensors[t++];
        exact_q_ = tensors[t++];
        exact_d_ = tensors[t++];
        if (screen_dim_) {
            TORCH_CHECK(dim_ % CG_Q4_ACT_BLOCK == 0, "Int4DecodePlan: a screened head needs dim % 32 == 0");
            TORCH_CHECK(proj_.scalar_type() == at::kFloat && proj_.is_contiguous() && proj_.dim() == 2 &&
                            proj_.size(0) == dim_ && proj_.size(1) == screen_dim_,
                        "Int4DecodePlan: head projection must be fp32 [", dim_, ", ", screen_dim_, "]");
            TORCH_CHECK(exact_q_.scalar_type() == at::kChar && exact_q_.is_contiguous() && exact_q_.dim() == 2 &&
                            exact_q_.size(0) == output_.N && exact_q_.size(1) == dim_,
                        "Int4DecodePlan: exact head codes must be int8 [", output_.N, ", ", dim_, "]");
            TORCH_CHECK(exact_d_.scalar_type() == at::kFloat && exact_d_.is_contiguous() && exact_d_.dim() == 2 &&
                            exact_d_.size(0) == output_.N && exact_d_.size(1) == dim_ / CG_Q4_ACT_BLOCK,
                        "Int4DecodePlan: exact head scales must be fp32 [", output_.N, ", ", dim_ / CG_Q4_ACT_BLOCK,
                        "]");
        }
        TORCH_CHECK(cos_.dim() == 2 && cos_.size(1) == rotary_dim_ && sin_.sizes() == cos_.sizes(),
                    "Int4DecodePlan: rotary tables must be [max_len, rotary_dim]");
        max_k_ = std::max({dim_, n_heads_ * head_dim_, hidden_});
    }

    int64_t vocab_size() const { return output_.N; }

    // The weight bytes a chunk of output rows may hold (0: no byte bound); returns the previous value.
    // Chunking never changes results: every output row is computed alone, whoever computes it.
    int64_t set_chunk_bytes(int64_t bytes) {
        TORCH_CHECK(bytes >= 0, "Int4DecodePlan.set_chunk_bytes: negative size");
        const int64_t previous = chunk_bytes_;
        chunk_bytes_ = bytes;
        return previous;
    }

    // x: the token's embedding [..., dim] (any float dtype); k/v: the cache, one fp32 [1, Hkv, L, Dh]
    // tensor per layer. Writes position `pos` of the cache; returns logits [1, V] fp32.
    at::Tensor step(const at::Tensor& x, int64_t pos, const std::vector<at::Tensor>& k_cache,
                    const std::vector<at::Tensor>& v_cache) {
        TORCH_CHECK(x.numel() == dim_, "Int4DecodePlan.step: x must hold one embedding of ", dim_, " values");
        TORCH_CHECK(pos >= 0 && pos < cos_.size(0), "Int4DecodePlan.step: position ", pos, " beyond the rotary table");
        check_cache(k_cache, v_cache, pos);
        const cg_q4::Impl impl = cg_q4::active_impl();
        at::Tensor xin = x.reshape({dim_}).to(at::kFloat).contiguous();
        at::Tensor logits = at::empty({1, output_.N}, at::kFloat);
        Shared sh(*this);
        std::vector<int64_t> cand;  // the screened head's candidates, chosen by one thread
        std::vector<float*> kc(n_layers_), vc(n_layers_);
        for (int64_t l = 0; l < n_layers_; ++l) {
            kc[l] = k_cache[l].data_ptr<float>();
            vc[l] = v_cache[l].data_ptr<float>();
        }
        const int64_t L = k_cache[0].size(2);
        const float* x0 = xin.data_ptr<float>();
        float* out = logits.data_ptr<float>();
        const int nth = std::max(1, at::get_num_threads());
        // One parallel region for the whole step: each thread owns a slice of every GEMV's output rows
        // and of the attention heads, and repeats the small per-vector work (norms, activation
        // quantization, rotary) on its own copy, so the threads meet only at a barrier after each
        // product instead of forking ~110 times per token.
#pragma omp parallel num_threads(nth)
        {
            const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
            Private me(*this, x0);
            for (int64_t l = 0; l < n_layers_; ++l) {
                const Layer& Ly = layers_[l];
                rmsnorm(me.X.data(), Ly.attn_norm.data_ptr<float>(), me.h.data());
                linear(impl, Ly.qkv, me.h.data(), me.act, sh.qkv.data(), nt);
                std::copy(sh.qkv.begin(), sh.qkv.end(), me.qkv.begin());
                float* q = me.qkv.data();
                float* k = q + n_heads_ * head_dim_;
                float* v = k + n_kv_ * head_dim_;
                for (int64_t hh = 0; hh < n_heads_; ++hh) rope(q + hh * head_dim_, pos);
                for (int64_t hh = 0; hh < n_kv_; ++hh) rope(k + hh * head_dim_, pos);
                if (tid == 0) write_cache(k, v, kc[l], vc[l], L, pos);  // read back by later steps only
                // this thread's query heads, a kv head's group at a time (its keys and values read once)
                const int64_t group = n_heads_ / n_kv_, h_end = n_heads_ * (tid + 1) / nt;
                for (int64_t h0 = n_heads_ * tid / nt; h0 < h_end;) {
                    const int64_t g = h0 / group, h1 = std::min(h_end, (g + 1) * group);
                    me.scores.resize((h1 - h0) * (pos + 1));
                    attend(q + h0 * head_dim_, h1 - h0, kc[l] + g * L * head_dim_, vc[l] + g * L * head_dim_,
                                 k + g * head_dim_, v + g * head_dim_, pos, head_dim_, me.scores.data(),
                                 sh.attn.data() + h0 * head_dim_);
                    h0 = h1;
                }
#pragma omp barrier
                linear(impl, Ly.o, sh.attn.data(), me.act, sh.out.data(), nt);
                for (int64_t d = 0; d < dim_; ++d) me.X[d] += sh.out[d];
                rmsnorm(me.X.data(), Ly.ffn_norm.data_ptr<float>(), me.h.data());
                linear(impl, Ly.gate_up, me.h.data(), me.act, sh.gu.data(), nt);
                // each thread its own copy (a few microseconds), not halves and a barrier
                silu_mul(sh.gu.data(), sh.gu.data() + hidden_, me.a.data(), hidden_);
                linear(impl, Ly.down, me.a.data(), me.act, sh.out.data(), nt);
                for (int64_t d = 0; d < dim_; ++d) me.X[d] += sh.out[d];
            }
            rmsnorm(me.X.data(), norm_.data_ptr<float>(), me.h.data());
            if (screen_dim_) project(me.h.data(), me.z.data());
            linear(impl, output_, screen_dim_ ? me.z.data() : me.h.data(), me.act, out, nt);
            if (screen_dim_) {
#pragma omp single
                cand = candidates(out);
                rescore(cand, me.h.data(), out);  // every thread holds the same norm output h
            }
        }
        return logits;
    }

    // M tokens at positions pos..pos+M-1 (a prefill chunk, or the last token and a speculative draft):
    // x [M, dim]; writes those cache positions; returns logits [M, V], or [1, V] for the last token
    // only. Every product streams its weights once for all M rows; the per-row work (norms,
    // quantization, rotary, attention rows, FFN activations) is split over the threads.
    at::Tensor step_many(const at::Tensor& x, int64_t pos, const std::vector<at::Tensor>& k_cache,
                         const std::vector<at::Tensor>& v_cache, bool last_only) {
        TORCH_CHECK(x.dim() >= 1 && x.size(-1) == dim_ && x.numel() > 0,
                    "Int4DecodePlan.step_many: x must be [M, ", dim_, "]");
        const int64_t M = x.numel() / dim_;
        check_cache(k_cache, v_cache, pos + M - 1);
        TORCH_CHECK(pos >= 0, "Int4DecodePlan.step_many: negative position");
        const cg_q4::Impl impl = cg_q4::active_impl();
        at::Tensor X = x.reshape({M, dim_}).to(at::kFloat).contiguous().clone();
        const int64_t M_out = last_only ? 1 : M;
        at::Tensor logits = at::empty({M_out, output_.N}, at::kFloat);
        const int64_t qkv_n = (n_heads_ + 2 * n_kv_) * head_dim_, attn_n = n_heads_ * head_dim_;
        std::vector<float> h(M * dim_), qkv(M * qkv_n), attn(M * attn_n), out(M * dim_), gu(M * 2 * hidden_),
            a(M * hidden_), z(M * screen_dim_);
        std::vector<int8_t> qa(M * max_k_);
        std::vector<int64_t> cand;  // the screened head's candidates of one row, chosen by one thread
        std::vector<float> da(M * max_k_ / CG_Q4_ACT_BLOCK), asum(M * max_k_ / CG_Q4_ACT_BLOCK);
        std::vector<float*> kc(n_layers_), vc(n_layers_);
        for (int64_t l = 0; l < n_layers_; ++l) {
            kc[l] = k_cache[l].data_ptr<float>();
            vc[l] = v_cache[l].data_ptr<float>();
        }
        const int64_t L = k_cache[0].size(2), group = n_heads_ / n_kv_;
        float* xs = X.data_ptr<float>();
        float* lg = logits.data_ptr<float>();
        const int nth = std::max(1, at::get_num_threads());
#pragma omp parallel num_threads(nth)
        {
            const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
            const int64_t r0 = M * tid / nt, r1 = M * (tid + 1) / nt;  // this thread's rows
            std::vector<float> scores;  // this thread's
            // quantize rows r0..r1 of src [M, K] into the shared int8 activations
            auto quantize = [&](const float* src, int64_t K) {
                if (r1 > r0) {
                    cg_q4::quantize_rows(impl, src + r0 * K, r1 - r0, K, qa.data() + r0 * K,
                                         da.data() + r0 * K / CG_Q4_ACT_BLOCK, asum.data() + r0 * K / CG_Q4_ACT_BLOCK);
                }
            };
            auto product = [&](const QLinear& q, int64_t rows, int64_t first, float* y) {
                const int64_t nb = q.K / CG_Q4_ACT_BLOCK;
                const cg_q8_act act{qa.data() + first * q.K, da.data() + first * nb, asum.data() + first * nb};
                gemm_many(impl, q, act, rows, y, nt);
            };
            for (int64_t l = 0; l < n_layers_; ++l) {
                const Layer& Ly = layers_[l];
                for (int64_t r = r0; r < r1; ++r) rmsnorm(xs + r * dim_, Ly.attn_norm.data_ptr<float>(), h.data() + r * dim_);
                quantize(h.data(), dim_);
#pragma omp barrier
                product(Ly.qkv, M, 0, qkv.data());
                for (int64_t r = r0; r < r1; ++r) {
                    float* q = qkv.data() + r * qkv_n;
                    float* k = q + attn_n;
                    for (int64_t hh = 0; hh < n_heads_; ++hh) rope(q + hh * head_dim_, pos + r);
                    for (int64_t hh = 0; hh < n_kv_; ++hh) rope(k + hh * head_dim_, pos + r);
                    write_cache(k, k + n_kv_ * head_dim_, kc[l], vc[l], L, pos + r);
                }
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
                for (int64_t item = 0; item < M * n_kv_; ++item) {  // (row, kv head) pairs
                    const int64_t r = item / n_kv_, g = item % n_kv_, p = pos + r;
                    scores.resize(group * (p + 1));
                    const float* keys = kc[l] + g * L * head_dim_;
                    const float* values = vc[l] + g * L * head_dim_;
                    attend(qkv.data() + r * qkv_n + g * group * head_dim_, group, keys, values, keys + p * head_dim_,
                                 values + p * head_dim_, p, head_dim_, scores.data(),
                                 attn.data() + r * attn_n + g * group * head_dim_);
                }
                quantize(attn.data(), attn_n);
#pragma omp barrier
                product(Ly.o, M, 0, out.data());
                for (int64_t r = r0; r < r1; ++r) {
                    for (int64_t d = 0; d < dim_; ++d) xs[r * dim_ + d] += out[r * dim_ + d];
                    rmsnorm(xs + r * dim_, Ly.ffn_norm.data_ptr<float>(), h.data() + r * dim_);
                }
                quantize(h.data(), dim_);
#pragma omp barrier
                product(Ly.gate_up, M, 0, gu.data());
                for (int64_t r = r0; r < r1; ++r) {
                    const float* gr = gu.data() + r * 2 * hidden_;
                    silu_mul(gr, gr + hidden_, a.data() + r * hidden_, hidden_);
                }
                quantize(a.data(), hidden_);
#pragma omp barrier
                product(Ly.down, M, 0, out.data());
                for (int64_t r = r0; r < r1; ++r) {
                    for (int64_t d = 0; d < dim_; ++d) xs[r * dim_ + d] += out[r * dim_ + d];
                }
            }
            const int64_t first = M - M_out;
            for (int64_t r = std::max(r0, first); r < r1; ++r) {
                rmsnorm(xs + r * dim_, norm_.data_ptr<float>(), h.data() + r * dim_);
                if (screen_dim_) project(h.data() + r * dim_, z.data() + r * screen_dim_);
            }
            // rows before `first` are quantized but never read
            if (screen_dim_) {
                quantize(z.data(), screen_dim_);
            } else {
                quantize(h.data(), dim_);
            }
#pragma omp barrier
            product(output_, M_out, first, lg);
            for (int64_t m = 0; screen_dim_ && m < M_out; ++m) {
#pragma omp single
                cand = candidates(lg + m * output_.N);
                rescore(cand, h.data() + (first + m) * dim_, lg + m * output_.N);
            }
        }
        return logits;
    }

   private:
    // Quantized activations of one input vector, shared by a linear and its residual plane.
    struct Act {
        std::vector<int8_t> qa;
        std::vector<float> da, asum;
        explicit Act(int64_t k) : qa(k), da(k / CG_Q4_ACT_BLOCK), asum(k / CG_Q4_ACT_BLOCK) {}
    };

    // What every thread reads after a barrier: products and attention output.
    struct Shared {
        std::vector<float> qkv, attn, out, gu;
        explicit Shared(const Int4DecodePlan& p)
            : qkv((p.n_heads_ + 2 * p.n_kv_) * p.head_dim_), attn(p.n_heads_ * p.head_dim_), out(p.dim_),
              gu(2 * p.hidden_) {}
    };

    // Each thread's own copy of the residual stream and of the small per-vector work.
    struct Private {
        std::vector<float> X, h, qkv, a, scores, z;
        Act act;
        Private(const Int4DecodePlan& p, const float* x0)
            : X(x0, x0 + p.dim_), h(p.dim_), qkv((p.n_heads_ + 2 * p.n_kv_) * p.head_dim_), a(p.hidden_),
              z(p.screen_dim_), act(p.max_k_) {}
    };

    at::Tensor norm_weight(const at::Tensor& w) const {
        TORCH_CHECK(w.numel() == dim_, "Int4DecodePlan: a norm weight has ", w.numel(), " values, expected ", dim_);
        return w.to(at::kFloat).contiguous();
    }

    void check_linear(const QLinear& q, int64_t n_expected, int64_t k_expected) const {
        TORCH_CHECK(q.K == k_expected, "Int4DecodePlan: a linear has K=", q.K, ", expected ", k_expected);
        TORCH_CHECK(q.G == 32 || q.G == 64 || q.G == 128, "Int4DecodePlan: group size must be 32, 64 or 128");
        TORCH_CHECK(q.K % q.G == 0 && q.K % CG_Q4_ACT_BLOCK == 0, "Int4DecodePlan: K not a multiple of the group");
        for (const at::Tensor* p : {&q.packed, &q.residual}) {
            if (p == &q.residual && p->numel() == 0) continue;
            TORCH_CHECK(p->scalar_type() == at::kByte && p->dim() == 2 && p->is_contiguous() && p->device().is_cpu() &&
                            p->size(0) == q.N && p->size(1) == cg_q4_row_bytes(q.K, q.G),
                        "Int4DecodePlan: packed weight [", q.N, ", ", cg_q4_row_bytes(q.K, q.G), "] uint8 expected");
        }
        TORCH_CHECK(n_expected < 0 || q.N == n_expected, "Int4DecodePlan: a linear has N=", q.N, ", expected ",
                    n_expected);
        TORCH_CHECK(q.bias.numel() == 0 || (q.bias.scalar_type() == at::kFloat && q.bias.numel() == q.N &&
                                             q.bias.is_contiguous()),
                    "Int4DecodePlan: bias must be fp32 [N]");
    }

    // RMSNorm as engine/model.py: x * rsqrt(mean(x^2) + eps), then times the weight.
    void rmsnorm(const float* x, const float* w, float* out) const {
        float ss = 0.0f;
        for (int64_t d = 0; d < dim_; ++d) ss += x[d] * x[d];
        const float inv = 1.0f / std::sqrt(ss / float(dim_) + eps_);
        for (int64_t d = 0; d < dim_; ++d) out[d] = w[d] * (x[d] * inv);
    }

    // y = x @ W.T + bias for one vector, called by every thread of the region: each quantizes x itself
    // (a few thousand values, cheaper than a barrier), then gemm_many shares out the output rows.
    void linear(cg_q4::Impl impl, const QLinear& q, const float* x, Act& act, float* y, int nt) const {
        cg_q4::quantize_rows(impl, x, 1, q.K, act.qa.data(), act.da.data(), act.asum.data());
        const cg_q8_act view{act.qa.data(), act.da.data(), act.asum.data()};
        gemm_many(impl, q, view, 1, y, nt);
    }

    // The cache as the steps need it: one contiguous fp32 [1, Hkv, L, Dh] k and v per layer, one L for
    // all, with room for position `last`.
    void check_cache(const std::vector<at::Tensor>& k_cache, const std::vector<at::Tensor>& v_cache,
                     int64_t last) const {
        TORCH_CHECK(int64_t(k_cache.size()) == n_layers_ && int64_t(v_cache.size()) == n_layers_,
                    "Int4DecodePlan: one k and one v cache tensor per layer");
        TORCH_CHECK(last < cos_.size(0), "Int4DecodePlan: position ", last, " beyond the rotary table");
        for (int64_t l = 0; l < n_layers_; ++l) {
            for (const at::Tensor* c : {&k_cache[l], &v_cache[l]}) {
                TORCH_CHECK(c->scalar_type() == at::kFloat && c->is_contiguous() && c->dim() == 4 && c->size(0) == 1 &&
                                c->size(1) == n_kv_ && c->size(3) == head_dim_ && last < c->size(2) &&
                                c->size(2) == k_cache[0].size(2),
                            "Int4DecodePlan: cache tensors must be contiguous [1, ", n_kv_, ", L > ", last, ", ",
                            head_dim_, "] float32");
            }
        }
    }

    // y [rows, N] = act [rows, K] @ W.T + bias (W = W1 + W2 with a residual plane, both planes in one
    // pass: measured +2.8 % decode tok/s over a second GEMM and an add, AVX-512 host, 10 alternating
    // rounds), called by every thread of the region: chunks of output rows go to whichever thread is
    // free (rows stream from memory at rates that differ between threads); the loop ends in a barrier.
    void gemm_many(cg_q4::Impl impl, const QLinear& q, const cg_q8_act& act, int64_t rows, float* y, int nt) const {
        const float* bias = q.bias.numel() ? q.bias.data_ptr<float>() : nullptr;
        const uint8_t* w = q.packed.data_ptr<uint8_t>();
        const uint8_t* r = q.residual.numel() ? q.residual.data_ptr<uint8_t>() : nullptr;
        int64_t chunk = q.N / (int64_t(nt) * kChunksPerThread);
        if (chunk_bytes_ > 0) {
            const int64_t row_bytes = cg_q4_row_bytes(q.K, q.G) * (r ? 2 : 1);
            chunk = std::min(chunk, chunk_bytes_ / row_bytes);
        }
        chunk = std::max(kMinChunkRows, chunk);
        const int64_t n_chunks = (q.N + chunk - 1) / chunk;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t n0 = c * chunk, n1 = std::min(q.N, n0 + chunk);
            cg_q4::gemm_rows(impl, &act, rows, w, r, q.K, q.G, n0, n1, bias, y, q.N);
        }
    }

    // z [R] = h [dim] @ proj [dim, R]: the screen's inputs (the hidden state's principal directions).
    void project(const float* h, float* z) const {
        const float* p = proj_.data_ptr<float>();
        const int64_t R = screen_dim_;
        std::fill(z, z + R, 0.0f);
        for (int64_t d = 0; d < dim_; ++d) {
            const float hd = h[d];
            const float* row = p + d * R;
            for (int64_t j = 0; j < R; ++j) z[j] += hd * row[j];
        }
    }

    // The indices of the `candidates_` largest screen logits of one position (a min-heap of the best
    // seen: one compare per logit for most of the vocabulary).
    std::vector<int64_t> candidates(const float* logits) const {
        const int64_t V = output_.N, k = std::min(candidates_, V);
        std::vector<std::pair<float, int64_t>> heap;
        heap.reserve(k);
        for (int64_t n = 0; n < k; ++n) heap.emplace_back(logits[n], n);
        const auto later = std::greater<std::pair<float, int64_t>>();
        std::make_heap(heap.begin(), heap.end(), later);
        for (int64_t n = k; n < V; ++n) {
            if (logits[n] > heap.front().first) {
                std::pop_heap(heap.begin(), heap.end(), later);
                heap.back() = {logits[n], n};
                std::push_heap(heap.begin(), heap.end(), later);
            }
        }
        std::vector<int64_t> out(k);
        for (int64_t i = 0; i < k; ++i) out[i] = heap[i].second;
        return out;
    }

    // Called by every thread of the region: the candidates' logits replaced by the exact products of the
    // norm output h with those rows of the 8-bit head (w = d * q per 32 inputs), shared out over the
    // threads; ends in a barrier.
    void rescore(const std::vector<int64_t>& cand, const float* h, float* logits) const {
        const int8_t* codes = exact_q_.data_ptr<int8_t>();
        const float* scales = exact_d_.data_ptr<float>();
        const int64_t nb = dim_ / CG_Q4_ACT_BLOCK, k = int64_t(cand.size());
#pragma omp for schedule(static)
        for (int64_t i = 0; i < k; ++i) {
            const int64_t n = cand[i];
            logits[n] = exact_row_dot(codes + n * dim_, scales + n * nb, h, dim_);
        }
    }

    // Rotary embedding of one head in place: x * cos + rotate(x) * sin over the first rotary_dim values.
    void rope(float* x, int64_t pos) const {
        const float* cos = cos_.data_ptr<float>() + pos * rotary_dim_;
        const float* sin = sin_.data_ptr<float>() + pos * rotary_dim_;
        float rot[kMaxRotary];
        const int64_t rd = rotary_dim_, half = rd / 2;
        for (int64_t j = 0; j < rd; ++j) {
            if (interleaved_) {
                rot[j] = (j % 2 == 0) ? -x[j + 1] : x[j - 1];
            } else {
                rot[j] = j < half ? -x[j + half] : x[j - half];
            }
        }
        for (int64_t j = 0; j < rd; ++j) x[j] = x[j] * cos[j] + rot[j] * sin[j];
    }

    void write_cache(const float* k, const float* v, float* kc, float* vc, int64_t L, int64_t pos) const {
        const int64_t Dh = head_dim_;
        for (int64_t hh = 0; hh < n_kv_; ++hh) {
            std::copy(k + hh * Dh, k + (hh + 1) * Dh, kc + (hh * L + pos) * Dh);
            std::copy(v + hh * Dh, v + (hh + 1) * Dh, vc + (hh * L + pos) * Dh);
        }
    }

    float eps_;
    int64_t chunk_bytes_ = kDefaultChunkBytes;
    int64_t n_layers_ = 0, dim_ = 0, n_heads_ = 0, n_kv_ = 0, head_dim_ = 0, rotary_dim_ = 0, hidden_ = 0, max_k_ = 0;
    int64_t screen_dim_ = 0, candidates_ = 0;  // a screened head: its R and rescored candidates (0: plain)
    bool interleaved_ = false;
    std::vector<Layer> layers_;
    at::Tensor norm_, cos_, sin_, proj_, exact_q_, exact_d_;
    QLinear output_;
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(codegeex_lsp, m) {
    m.class_<Int4DecodePlan>("Int4DecodePlan")
        .def(torch::init<std::vector<at::Tensor>, std::vector<int64_t>, double>())
        .def("step", &Int4DecodePlan::step)
        .def("step_many", &Int4DecodePlan::step_many)
        .def("vocab_size", &Int4DecodePlan::vocab_size)
        .def("set_chunk_bytes", &Int4DecodePlan::set_chunk_bytes);
}
