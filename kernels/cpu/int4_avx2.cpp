// The AVX2 + FMA + F16C path: int4_simd_body.h compiled for that target only (the rest of the
// extension carries no -m flag). Run only when cg_cpu_has_avx2().
#include "cpu/int4_kernels.h"

#if defined(CG_Q4_X86_SIMD)
#include <immintrin.h>
#include <string.h>

#include <algorithm>
#include <vector>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define CG_SIMD_VNNI 0
#define CG_SIMD_TILE_M 4  // 16 ymm registers: 4 rows of accumulators plus the unpacked codes
#define CG_SIMD_PREFETCH_MIN_ROW 0  // every row (measured on an AVX2-only Zen 3 host)
#define CG_SIMD_QUANTIZE cg_q8_quantize_rows_avx2
#define CG_SIMD_GEMM cg_q4_gemm_rows_avx2
#define CG_SIMD_DEQUANT cg_q4_dequant_rows_avx2
#include "cpu/int4_simd_body.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // CG_Q4_X86_SIMD
