// The run-time choice of CPU path, shared by the op bindings (int4_ops.cpp) and the fused decode
// step (int4_decode.cpp): both must run the kernels of the path the user or the CPU picked.
#pragma once

#include <stdint.h>

#include "cpu/int4_kernels.h"

namespace cg_q4 {

enum class Impl : int { kRef = 0, kAvx2 = 1, kAvx512 = 2 };

// The path the default ops run now (best supported, or what set_path chose).
Impl active_impl();

// x [M, K] fp32 -> int8 activations in kernel order (int4_kernels.h), on `impl`.
void quantize_rows(Impl impl, const float* x, int64_t M, int64_t K, int8_t* qa, float* da, float* asum);

// y[m * ldy + n] for n0 <= n < n1, on `impl`; W = W1 + W2 when the residual plane r is not null.
void gemm_rows(Impl impl, const cg_q8_act* act, int64_t M, const uint8_t* w, const uint8_t* r, int64_t K, int64_t G,
               int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy);

}  // namespace cg_q4
