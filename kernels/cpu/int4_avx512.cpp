// The AVX-512 + VNNI path: int4_simd_body.h compiled for AVX-512 F/BW/VL + VNNI, whose vpdpbusd
// (u8 x s8, 4-way sum, int32 accumulate in one instruction) replaces AVX2's maddubs + madd + add,
// and whose 32 vector registers hold accumulators for tiles of 8 activation rows (prefill).
// The vectors stay 256 bits wide: the layout's 32-byte code vectors map 1:1, and on CPUs that
// split 512-bit operations in two (AMD Zen 4) the wider form would only add shuffles.
// Run only when cg_cpu_has_avx512(). Never AMX: some hypervisors trap it.
#include "cpu/int4_kernels.h"

#if defined(CG_Q4_X86_SIMD)
#include <immintrin.h>
#include <string.h>

#include <algorithm>
#include <vector>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#define CG_SIMD_VNNI 1
#define CG_SIMD_TILE_M 8
#define CG_SIMD_PREFETCH_MIN_ROW (1 << 10)  // long rows only (measured on AVX-512 hosts)
#define CG_SIMD_QUANTIZE cg_q8_quantize_rows_avx512
#define CG_SIMD_GEMM cg_q4_gemm_rows_avx512
#define CG_SIMD_DEQUANT cg_q4_dequant_rows_avx512
#include "cpu/int4_simd_body.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // CG_Q4_X86_SIMD
