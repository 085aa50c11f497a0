// The SIMD kernels, included once per target by int4_avx2.cpp and int4_avx512.cpp inside a
// `#pragma GCC target` region (deliberately no include guard). Same signatures as int4_ref.cpp, same
// results up to float summation order. The includer defines:
//   CG_SIMD_VNNI     1: 32-bit dot products with vpdpbusd (AVX-512 VNNI), 0: maddubs + madd (AVX2)
//   CG_SIMD_TILE_M   activation rows sharing one unpacked weight vector (registers permitting)
//   CG_SIMD_PREFETCH_MIN_ROW   the shortest weight row (bytes) fetched ahead in software
//   CG_SIMD_QUANTIZE, CG_SIMD_GEMM, CG_SIMD_DEQUANT   the public names of this path's kernels
// Every standard header is included before the target region, so no std template is instantiated
// with the wider ISA (a COMDAT copy of it could otherwise be what the scalar path links to).
//
// The dot product is ggml's q4 x q8 trick with unsigned codes: _mm256_maddubs_epi16(codes 0..15,
// int8 activations) needs no sign fix-up, and the zero point is applied once per 32-input block
// through the activation block sums (see int4_kernels.h). In a 256-input super-block each 32-bit lane
// of every unpacked vector belongs to one 32-input block, so the int16 products of the whole
// super-block are added lane-wise (8 pair sums of at most 2 * 15 * 127 = 3810 each: <= 30480, no
// overflow), widened once, converted once and scaled by one FMA: per 64 inputs that is 3 ALU ops
// to unpack, 2 maddubs and 2 adds. With VNNI, one vpdpbusd per 32 inputs does the multiply, the
// 4-way sum and the accumulation into the block's int32 lane. The 128-input half-block
// (K % 256 == 128, as for K = 896) is the same over 4 blocks, each spread over two lanes.

// An empty asm that claims to change v: the int16 sums stay one chain per activation row. Without it
// GCC's reassociation turned the 8 (or 4) sums of a super-block into a tree that keeps every maddubs
// result live at once, and with 4 activation rows that spilled ~20 vectors to the stack per
// super-block (AVX2, 16 registers): 128 x 9728 x 896 on one core took 26 ms, 20 ms with the chain.
#ifndef CG_SIMD_KEEP_ORDER
#define CG_SIMD_KEEP_ORDER(v) __asm__("" : "+x"(v))
#endif

namespace {

constexpr int kTileM = CG_SIMD_TILE_M;     // activation rows sharing one unpacked weight vector
constexpr int64_t kBlockBytes = 16 << 10;  // weight rows revisited by every activation tile (L1)
constexpr int64_t kActChunkBytes = 128 << 10;  // int8 activation rows revisited by every block (L2)
constexpr int64_t kTileActBytes = 16 << 10;    // int8 activation rows of one tile (L1)
// Long rows (K = 4864: 2.9 KB) read three interleaved streams (codes, scales, zero points) that the
// hardware prefetchers pick up late; fetching 4 KB ahead took the DRAM-bound 896 x 4864 GEMV from
// ~22 to ~31 GB/s on 2 cores (AVX-512 host), where short rows streamed well on their own. On an
// AVX2-only Zen 3 host short rows (K = 896: 532 B) need it too: prefetching every row 4 KB ahead
// decoded 60-63 tok/s against 49-52 with long rows only (2 KB ahead: 57-59), so the includer sets
// the shortest row that is prefetched.
constexpr int64_t kPrefetchAhead = 4 << 10;
constexpr int64_t kPrefetchMinRow = CG_SIMD_PREFETCH_MIN_ROW;

inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 sh = _mm_movehdup_ps(s);
    s = _mm_add_ps(s, sh);
    sh = _mm_movehl_ps(sh, s);
    return _mm_cvtss_f32(_mm_add_ss(s, sh));
}

inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

inline __m256i maddubs_at(__m256i codes, const int8_t* a) {
    return _mm256_maddubs_epi16(codes, _mm256_loadu_si256((const __m256i*)a));
}

#if CG_SIMD_VNNI
// The VNNI dot products of one super-block: codes(i, &lo, &hi) gives the u8 code vectors of its
// i-th 64 inputs (low and high halves, in activation order); out[m] = int32 sums per 32-input lane.
template <int MT, class Codes>
inline void vnni_superblock_sums(Codes codes, const int8_t* const* a, __m256i* out) {
    // Few rows: a second chain per row, or vpdpbusd's latency rather than its throughput bounds it.
    constexpr bool kTwoChains = MT < 4;
    __m256i s[MT], t[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) s[m] = t[m] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
        __m256i lo, hi;
        codes(i, &lo, &hi);
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) {
            s[m] = _mm256_dpbusd_epi32(s[m], lo, _mm256_loadu_si256((const __m256i*)(a[m] + 64 * i)));
            __m256i& h = kTwoChains ? t[m] : s[m];
            h = _mm256_dpbusd_epi32(h, hi, _mm256_loadu_si256((const __m256i*)(a[m] + 64 * i + 32)));
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) out[m] = kTwoChains ? _mm256_add_epi32(s[m], t[m]) : s[m];
}
#endif

// One super-block against MT activation rows: out[m] = int32 sums of its 8 blocks of 32.
template <int MT>
inline void isums_superblock(const cg_q4_superblock* blk, const int8_t* const* a, __m256i* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#if CG_SIMD_VNNI
    vnni_superblock_sums<MT>(
        [&](int i, __m256i* lo, __m256i* hi) {
            const __m256i w = _mm256_loadu_si256((const __m256i*)blk->qs[i]);
            *lo = _mm256_and_si256(w, m4);
            *hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
        },
        a, out);
#else
    __m256i s[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) s[m] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
        const __m256i w = _mm256_loadu_si256((const __m256i*)blk->qs[i]);
        const __m256i lo = _mm256_and_si256(w, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) {
            s[m] = _mm256_add_epi16(s[m], _mm256_add_epi16(maddubs_at(lo, a[m] + 64 * i), maddubs_at(hi, a[m] + 64 * i + 32)));
            CG_SIMD_KEEP_ORDER(s[m]);
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) out[m] = _mm256_madd_epi16(s[m], _mm256_set1_epi16(1));
#endif
}

// The half-block (128 inputs): out[m] = int32 lanes [b0 b1 b2 b3 | b0 b1 b2 b3], each block's sum
// split over its two lanes (both halves get the same scale, and all lanes are summed at the end).
template <int MT>
inline void isums_halfblock(const cg_q4_halfblock* blk, const int8_t* const* a, __m256i* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i s[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) s[m] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i) {
        const __m256i w = _mm256_loadu_si256((const __m256i*)blk->qs[i]);
        const __m256i lo = _mm256_and_si256(w, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) {
#if CG_SIMD_VNNI
            s[m] = _mm256_dpbusd_epi32(s[m], lo, _mm256_loadu_si256((const __m256i*)(a[m] + 64 * i)));
            s[m] = _mm256_dpbusd_epi32(s[m], hi, _mm256_loadu_si256((const __m256i*)(a[m] + 64 * i + 32)));
#else
            s[m] = _mm256_add_epi16(s[m], _mm256_add_epi16(maddubs_at(lo, a[m] + 64 * i), maddubs_at(hi, a[m] + 64 * i + 32)));
            CG_SIMD_KEEP_ORDER(s[m]);
#endif
        }
    }
#if CG_SIMD_VNNI
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) out[m] = s[m];
#else
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) out[m] = _mm256_madd_epi16(s[m], _mm256_set1_epi16(1));
#endif
}

#if CG_SIMD_VNNI
// Two planes holding 8-bit codes (quant.reference.quantize_8bit_split: high nibbles in the first,
// low nibbles in the second, the first's scale exactly 16 times the second's): the nibbles rejoined
// into u8 codes c = 16 * q1 + q2, one vpdpbusd per 32 inputs instead of one per plane. vpdpbusd
// adds u8 x s8 products into int32 without saturating (32 * 255 * 127 per block lane), so the sums
// are exactly 16 * isum1 + isum2. (AVX2's maddubs would saturate its int16 pairs at c > 128.)
// vpternlogd 0xD8 is "c ? b : a" bitwise: lo = (w1 << 4 in the high nibble) | (w2's low nibble),
// hi = (w1's high nibble) | (w2 >> 4 in the low nibble).
inline void join_nibbles(__m256i w1, __m256i w2, __m256i* lo, __m256i* hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    *lo = _mm256_ternarylogic_epi32(_mm256_slli_epi16(w1, 4), w2, m4, 0xD8);
    *hi = _mm256_ternarylogic_epi32(w1, _mm256_srli_epi16(w2, 4), m4, 0xD8);
}

// isums_superblock for a joined pair of planes: out[m] = int32 sums of 16 * q1 + q2 per block.
template <int MT>
inline void isums_superblock_joined(const cg_q4_superblock* b1, const cg_q4_superblock* b2,
                                    const int8_t* const* a, __m256i* out) {
    vnni_superblock_sums<MT>(
        [&](int i, __m256i* lo, __m256i* hi) {
            join_nibbles(_mm256_loadu_si256((const __m256i*)b1->qs[i]), _mm256_loadu_si256((const __m256i*)b2->qs[i]),
                         lo, hi);
        },
        a, out);
}

// isums_halfblock for a joined pair of planes (same lanes as isums_halfblock).
template <int MT>
inline void isums_halfblock_joined(const cg_q4_halfblock* b1, const cg_q4_halfblock* b2, const int8_t* const* a,
                                   __m256i* out) {
    __m256i s[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) s[m] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i) {
        __m256i lo, hi;
        join_nibbles(_mm256_loadu_si256((const __m256i*)b1->qs[i]), _mm256_loadu_si256((const __m256i*)b2->qs[i]),
                     &lo, &hi);
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) {
            s[m] = _mm256_dpbusd_epi32(s[m], lo, _mm256_loadu_si256((const __m256i*)(a[m] + 64 * i)));
            s[m] = _mm256_dpbusd_epi32(s[m], hi, _mm256_loadu_si256((const __m256i*)(a[m] + 64 * i + 32)));
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) out[m] = s[m];
}
#endif  // CG_SIMD_VNNI

// Scales and zero points of the half-block's 4 blocks of 32 (first group g0), exact-size loads.
template <int G>
inline void halfblock_scales(const cg_q4_row& r, int64_t g0, __m128* d4, __m128* z4) {
    if constexpr (G == 32) {
        int64_t d_bits;
        int32_t z_bits;
        memcpy(&d_bits, r.d + g0, 8);
        memcpy(&z_bits, r.z + g0, 4);
        *d4 = _mm_cvtph_ps(_mm_cvtsi64_si128(d_bits));
        *z4 = _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(z_bits)));
    } else if constexpr (G == 64) {
        int32_t d_bits;
        uint16_t z_bits;
        memcpy(&d_bits, r.d + g0, 4);
        memcpy(&z_bits, r.z + g0, 2);
        *d4 = _mm_permute_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(d_bits)), 0x50);  // [d0 d0 d1 d1]
        *z4 = _mm_permute_ps(_mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(z_bits))), 0x50);
    } else {
        *d4 = _mm_set1_ps(_cvtsh_ss(r.d[g0]));
        *z4 = _mm_set1_ps((float)r.z[g0]);
    }
}

// The rest after the (half) blocks, for K % 128 != 0: NB (1..3) blocks of 32 in 64-input chunks
// (low nibbles: block 2c, high: 2c + 1) and maybe the 32-input tail; natural activation order.
// Reduced with an int16 hadd tree (every int16 stays below 8 * 3810) to out[m] = [b0 .. b(NB-1), 0 ..].
template <int NB, int MT>
inline void isums_remainder(const cg_q4_chunk* chunks, const cg_q4_tail* tail, const int8_t* const* a,
                            __m256i* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    __m256i q[2][MT];  // per lane: 2 quad sums of each of blocks 4i .. 4i + 3
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i) {
        __m256i h[2][MT];  // per lane: 4 pair sums of block 2j, 4 of block 2j + 1
#pragma GCC unroll 2
        for (int jj = 0; jj < 2; ++jj) {
            const int j = 2 * i + jj;
            if (2 * j + 1 < NB) {
                const __m256i w = _mm256_loadu_si256((const __m256i*)chunks[j].qs);
                const __m256i lo = _mm256_and_si256(w, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
#pragma GCC unroll 8
                for (int m = 0; m < MT; ++m) {
                    h[jj][m] = _mm256_hadd_epi16(maddubs_at(lo, a[m] + 64 * j), maddubs_at(hi, a[m] + 64 * j + 32));
                }
            } else if (2 * j < NB) {  // odd count: the last block is the row's 32-input tail
                const __m128i t = _mm_loadu_si128((const __m128i*)tail->qs);
                const __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
#pragma GCC unroll 8
                for (int m = 0; m < MT; ++m) h[jj][m] = _mm256_hadd_epi16(maddubs_at(w, a[m] + 64 * j), zero);
            } else {
#pragma GCC unroll 8
                for (int m = 0; m < MT; ++m) h[jj][m] = zero;
            }
        }
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) q[i][m] = _mm256_hadd_epi16(h[0][m], h[1][m]);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) {
        const __m256i t = _mm256_hadd_epi16(q[0][m], q[1][m]);  // per lane: [b0 .. b7] half sums
        out[m] = _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(t)),
                                  _mm256_cvtepi16_epi32(_mm256_extracti128_si256(t, 1)));
    }
}

template <int MT>
inline void isums_remainder_n(int nb, const cg_q4_row& r, const int8_t* const* a, __m256i* out) {
    switch (nb) {
        case 1: isums_remainder<1, MT>(r.chunks, r.tail, a, out); break;
        case 2: isums_remainder<2, MT>(r.chunks, r.tail, a, out); break;
        case 3: isums_remainder<3, MT>(r.chunks, r.tail, a, out); break;
        default: isums_remainder<3, MT>(r.chunks, r.tail, a, out); break;
    }
}

// Per-block (8 lanes) scales and zero points of the 256 / G groups of super-block sb: each group's
// value repeated over its G / 32 blocks. Exact-size loads (the G = 128 zero points read 2 bytes
// more, which the layout's 3 bytes of row slack allow).
template <int G>
inline void block_scales(const cg_q4_row& r, int64_t sb, __m256* dv, __m256* zv) {
    if constexpr (G == 32) {
        *dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(r.d + 8 * sb)));
        *zv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(r.z + 8 * sb))));
    } else {
        constexpr int kGroups = 256 / G;
        int64_t d_bits = 0;
        int32_t z_bits = 0;
        memcpy(&d_bits, r.d + kGroups * sb, 2 * kGroups);
        memcpy(&z_bits, r.z + kGroups * sb, 4);
        const __m256i idx =
            G == 64 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3) : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        *dv = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_cvtsi64_si128(d_bits)), idx);
        *zv = _mm256_permutevar8x32_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi32_si128(z_bits))), idx);
    }
}

// The same for the remainder's n_groups groups (fewer than 256 / G), with masked dword loads that
// stay inside the row: the scales are followed by the zero points, those by >= 3 bytes of slack.
// Lanes past the remainder hold finite junk; the zero-padded activation scales cancel them.
template <int G>
inline void remainder_scales(const cg_q4_row& r, int64_t g0, int64_t n_groups, __m256* dv, __m256* zv) {
    const __m128i lane = _mm_setr_epi32(0, 1, 2, 3);
    const __m128i d_mask = _mm_cmpgt_epi32(_mm_set1_epi32((int)(n_groups + 1) / 2), lane);
    const __m128i z_mask = _mm_cmpgt_epi32(_mm_set1_epi32((int)(n_groups + 3) / 4), lane);
    __m256 d = _mm256_cvtph_ps(_mm_maskload_epi32((const int*)(r.d + g0), d_mask));
    __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_maskload_epi32((const int*)(r.z + g0), z_mask)));
    if constexpr (G != 32) {
        const __m256i idx =
            G == 64 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3) : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        d = _mm256_permutevar8x32_ps(d, idx);
        z = _mm256_permutevar8x32_ps(z, idx);
    }
    *dv = d;
    *zv = z;
}

// acc[m] += float(is[m]) * (d * da[m][off..]) - dz * das[m][off..], 8 block lanes per activation row.
template <int MT>
__attribute__((always_inline)) inline void add_block_terms(__m256* acc, const __m256i* is, __m256 d, __m256 dz, const float* const* da,
                            const float* const* das, int64_t off) {
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) {
        const __m256 c = _mm256_mul_ps(d, _mm256_loadu_ps(da[m] + off));
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[m]), c, acc[m]);
        acc[m] = _mm256_fnmadd_ps(dz, _mm256_loadu_ps(das[m] + off), acc[m]);
    }
}

// The same for the half-block: its 4 blocks' terms in both halves of is[m] (see isums_halfblock),
// the zero points' term subtracted once.
template <int MT>
__attribute__((always_inline)) inline void add_halfblock_terms(__m256* acc, const __m256i* is, __m128 d4, __m128 dz4, const float* const* da,
                                const float* const* das, int64_t off) {
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) {
        const __m128 c4 = _mm_mul_ps(d4, _mm_loadu_ps(da[m] + off));
        const __m128 corr = _mm_mul_ps(dz4, _mm_loadu_ps(das[m] + off));
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[m]), _mm256_set_m128(c4, c4), acc[m]);
        acc[m] = _mm256_sub_ps(acc[m], _mm256_set_m128(_mm_setzero_ps(), corr));
    }
}

// Output rows [n0, n1) against MT activation rows starting at m0. Per super-block (and once for the
// remainder), with 8 lanes = 8 blocks of 32 and das = da * asum (per activation row, see gemm_rows):
//   acc += float(isum) * (d * da) - (d * z) * das
// where d * z is computed once per weight row and shared by the MT activation rows. With NP = 2
// planes each region adds both planes' terms; where the scales say the pair is one 8-bit code
// (d1 == 16 * d2 in every lane, exact: both are fp16 values), VNNI does one joined dot product:
//   acc += float(isum_joined) * (d2 * da) - (d1 * z1 + d2 * z2) * das.
template <int G, int MT, int NP>
void rows_tile(const cg_q8_act* act, const float* das_all, int64_t m0, const uint8_t* packed,
               const uint8_t* residual, int64_t K, int64_t n0, int64_t n1, const float* bias, float* y,
               int64_t ldy) {
    static_assert(G == 32 || G == 64 || G == 128, "group size must be 32, 64 or 128");
    static_assert(NP == 1 || NP == 2, "one plane, or a plane and its residual");
    [[maybe_unused]] constexpr bool kJoin = NP == 2 && CG_SIMD_VNNI;
    const int64_t nblk = K / CG_Q4_ACT_BLOCK;
    const int64_t nsb = K / CG_Q4_SUPERBLOCK_ELEMS;
    const bool has_half = cg_q4_half_end(K) > cg_q4_sb_end(K);
    const int64_t rem0 = cg_q4_half_end(K) / CG_Q4_ACT_BLOCK;  // first block after the half-block
    const int nrem = (int)(nblk - rem0);                          // 0..3 blocks in chunks / tail
    const int64_t rem_groups = nrem * CG_Q4_ACT_BLOCK / G;
    const int8_t* qa[MT];
    const float* da[MT];
    const float* as[MT];
    alignas(32) float da_rem[MT][8] = {};  // zero-padded: lanes past the remainder contribute 0
    alignas(32) float as_rem[MT][8] = {};
    const float* da_rem_rows[MT];
    const float* as_rem_rows[MT];
#pragma GCC unroll 8
    for (int m = 0; m < MT; ++m) {
        qa[m] = act->qa + (m0 + m) * K;
        da[m] = act->da + (m0 + m) * nblk;
        as[m] = das_all + (m0 + m) * nblk;
        da_rem_rows[m] = da_rem[m];
        as_rem_rows[m] = as_rem[m];
        for (int b = 0; b < nrem; ++b) {
            da_rem[m][b] = da[m][rem0 + b];
            as_rem[m][b] = as[m][rem0 + b];
        }
    }
    const uint8_t* planes[2] = {packed, residual};
    const int64_t row_bytes = cg_q4_row_bytes(K, G);
    const bool prefetch = row_bytes >= kPrefetchMinRow;
    for (int64_t n = n0; n < n1; ++n) {
        __m256 acc[MT];
        __m256i is[MT];
        const int8_t* a[MT];
        cg_q4_row r[NP];
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) acc[m] = _mm256_setzero_ps();
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) {
            r[p] = cg_q4_row_at(planes[p], n, K, G);
            if (prefetch) {
                const char* ahead = (const char*)planes[p] + n * row_bytes + kPrefetchAhead;
                const char* range_end = (const char*)planes[p] + n1 * row_bytes;
                for (int64_t off = 0; off < row_bytes && ahead + off < range_end; off += 64) {
                    _mm_prefetch(ahead + off, _MM_HINT_T0);
                }
            }
        }
        for (int64_t sb = 0; sb < nsb; ++sb) {
            __m256 dv[NP], zv[NP];
#pragma GCC unroll 8
            for (int m = 0; m < MT; ++m) a[m] = qa[m] + sb * 256;
#pragma GCC unroll 2
            for (int p = 0; p < NP; ++p) block_scales<G>(r[p], sb, &dv[p], &zv[p]);
#if CG_SIMD_VNNI
            if constexpr (kJoin) {
                const __m256 d16 = _mm256_mul_ps(dv[1], _mm256_set1_ps(16.0f));
                if (_mm256_movemask_ps(_mm256_cmp_ps(dv[0], d16, _CMP_EQ_OQ)) == 0xff) {
                    isums_superblock_joined<MT>(r[0].blocks + sb, r[1].blocks + sb, a, is);
                    const __m256 dz = _mm256_fmadd_ps(dv[0], zv[0], _mm256_mul_ps(dv[1], zv[1]));
                    add_block_terms<MT>(acc, is, dv[1], dz, da, as, sb * 8);
                    continue;
                }
            }
#endif
#pragma GCC unroll 2
            for (int p = 0; p < NP; ++p) {
                isums_superblock<MT>(r[p].blocks + sb, a, is);
                add_block_terms<MT>(acc, is, dv[p], _mm256_mul_ps(dv[p], zv[p]), da, as, sb * 8);
            }
        }
        if (has_half) {
            __m128 d4[NP], z4[NP];
#pragma GCC unroll 8
            for (int m = 0; m < MT; ++m) a[m] = qa[m] + nsb * 256;
#pragma GCC unroll 2
            for (int p = 0; p < NP; ++p) halfblock_scales<G>(r[p], nsb * 256 / G, &d4[p], &z4[p]);
            bool joined = false;
#if CG_SIMD_VNNI
            if constexpr (kJoin) {
                const __m128 d16 = _mm_mul_ps(d4[1], _mm_set1_ps(16.0f));
                joined = _mm_movemask_ps(_mm_cmp_ps(d4[0], d16, _CMP_EQ_OQ)) == 0xf;
                if (joined) {
                    isums_halfblock_joined<MT>(r[0].half, r[1].half, a, is);
                    const __m128 dz4 = _mm_fmadd_ps(d4[0], z4[0], _mm_mul_ps(d4[1], z4[1]));
                    add_halfblock_terms<MT>(acc, is, d4[1], dz4, da, as, nsb * 8);
                }
            }
#endif
#pragma GCC unroll 2
            for (int p = 0; p < NP && !joined; ++p) {
                isums_halfblock<MT>(r[p].half, a, is);
                add_halfblock_terms<MT>(acc, is, d4[p], _mm_mul_ps(d4[p], z4[p]), da, as, nsb * 8);
            }
        }
        if (nrem) {  // K % 128 != 0 only (no model this project runs): always plane by plane
#pragma GCC unroll 8
            for (int m = 0; m < MT; ++m) a[m] = qa[m] + rem0 * CG_Q4_ACT_BLOCK;
#pragma GCC unroll 2
            for (int p = 0; p < NP; ++p) {
                __m256 dv, zv;
                isums_remainder_n<MT>(nrem, r[p], a, is);
                remainder_scales<G>(r[p], rem0 * CG_Q4_ACT_BLOCK / G, rem_groups, &dv, &zv);
                add_block_terms<MT>(acc, is, dv, _mm256_mul_ps(dv, zv), da_rem_rows, as_rem_rows, 0);
            }
        }
        const float b = bias ? bias[n] : 0.0f;
#pragma GCC unroll 8
        for (int m = 0; m < MT; ++m) y[(m0 + m) * ldy + n] = hsum_ps(acc[m]) + b;
    }
}

// rows_tile<G, mt> for a run-time mt in 1..MT.
template <int G, int MT>
void rows_tile_n(int mt, const cg_q8_act* act, const float* das, int64_t m0, const uint8_t* packed,
                 const uint8_t* residual, int64_t K, int64_t n0, int64_t n1, const float* bias, float* y,
                 int64_t ldy) {
    if constexpr (MT > 1) {
        if (mt < MT) return rows_tile_n<G, MT - 1>(mt, act, das, m0, packed, residual, K, n0, n1, bias, y, ldy);
    }
    // the planes as a template parameter: the one-plane code is the same as before residual planes
    if (residual) return rows_tile<G, MT, 2>(act, das, m0, packed, residual, K, n0, n1, bias, y, ldy);
    rows_tile<G, MT, 1>(act, das, m0, packed, nullptr, K, n0, n1, bias, y, ldy);
}

template <int G>
void gemm_rows(const cg_q8_act* act, int64_t M, const uint8_t* packed, const uint8_t* residual, int64_t K,
               int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy) {
    // Activation tiles of up to kTileM rows share each unpacked weight vector. With more tiles, output
    // rows go in blocks that stay in L1 while every tile passes over them, and activation rows go in
    // chunks that stay in L2 while the blocks pass under them: the weights stream once per chunk.
    // (Without the chunks, 512 rows of K = 896 took 3x longer per row than 256.)
    const int64_t block_row_bytes = (residual ? 2 : 1) * cg_q4_row_bytes(K, G);  // both planes stay in L1
    const int64_t block = M <= kTileM ? n1 - n0 : std::max<int64_t>(1, kBlockBytes / block_row_bytes);
    const int64_t chunk = std::max<int64_t>(kTileM, kActChunkBytes / K / kTileM * kTileM);
    // A tile's activation rows are read once per weight row: for long rows (K = 4864) narrower tiles
    // that stay in L1 beat wide ones from L2 (AVX-512, 8 -> 4 rows: 104 -> 125 GOP/s on one core).
    int64_t tile = kTileM;
    while (tile > 4 && tile * K > kTileActBytes) tile /= 2;
    const int64_t nblk = K / CG_Q4_ACT_BLOCK;
    std::vector<float> das(M * nblk);  // da * asum: the zero points' term, one product per block
    for (int64_t i = 0; i < M * nblk; ++i) das[i] = act->da[i] * act->asum[i];
    for (int64_t c0 = 0; c0 < M; c0 += chunk) {
        const int64_t c1 = std::min(M, c0 + chunk);
        for (int64_t b0 = n0; b0 < n1; b0 += block) {
            const int64_t b1 = std::min(n1, b0 + block);
            for (int64_t m0 = c0; m0 < c1; m0 += tile) {
                rows_tile_n<G, kTileM>((int)std::min<int64_t>(tile, c1 - m0), act, das.data(), m0, packed,
                                       residual, K, b0, b1, bias, y, ldy);
            }
        }
    }
}

}  // namespace

CG_Q8_QUANTIZE_ROWS_SIG(CG_SIMD_QUANTIZE) {
    const int64_t nb = K / CG_Q4_ACT_BLOCK;
    const int64_t nsb = K / CG_Q4_SUPERBLOCK_ELEMS;
    const int64_t half_end = cg_q4_half_end(K);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    alignas(32) int32_t units[8];
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t b = 0; b < nb; ++b) {
            const float* xs = x + m * K + b * CG_Q4_ACT_BLOCK;
            const __m256 x0 = _mm256_loadu_ps(xs), x1 = _mm256_loadu_ps(xs + 8);
            const __m256 x2 = _mm256_loadu_ps(xs + 16), x3 = _mm256_loadu_ps(xs + 24);
            __m256 vmax = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(x0, abs_mask), _mm256_and_ps(x1, abs_mask)),
                                        _mm256_max_ps(_mm256_and_ps(x2, abs_mask), _mm256_and_ps(x3, abs_mask)));
            __m128 m128 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
            m128 = _mm_max_ps(m128, _mm_movehl_ps(m128, m128));
            m128 = _mm_max_ss(m128, _mm_movehdup_ps(m128));
            const float d = _mm_cvtss_f32(m128) / 127.0f;
            const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
            // cvtps rounds half to even under the default MXCSR, like nearbyintf in the reference
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(x0, id));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(x1, id));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(x2, id));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(x3, id));
            const int32_t s =
                hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
            i0 = _mm256_packs_epi32(i0, i1);
            i2 = _mm256_packs_epi32(i2, i3);
            const __m256i q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i0, i2), perm);  // natural order
            int8_t* dst = qa + m * K;
            if (b < nsb * 8) {  // super-block: 4-input unit u of block j goes to 32u + 4j (cg_q4_act_pos)
                _mm256_store_si256((__m256i*)units, q);
                int8_t* sb = dst + b / 8 * 256 + (b % 8) * 4;
                for (int u = 0; u < 8; ++u) memcpy(sb + 32 * u, &units[u], 4);
            } else if (b < half_end / CG_Q4_ACT_BLOCK) {  // half-block: unit u = 4i + 2p + h of block j
                _mm256_store_si256((__m256i*)units, q);  // goes to 64i + 32h + 4(j + 4p)
                int8_t* hb = dst + nsb * 256 + (b - nsb * 8) * 4;
                for (int u = 0; u < 8; ++u) memcpy(hb + 64 * (u / 4) + 32 * (u % 2) + 16 * (u / 2 % 2), &units[u], 4);
            } else {
                _mm256_storeu_si256((__m256i*)(dst + b * CG_Q4_ACT_BLOCK), q);
            }
            da[m * nb + b] = d;
            asum[m * nb + b] = (float)s;
        }
    }
}

CG_Q4_GEMM_ROWS_SIG(CG_SIMD_GEMM) {
    switch (G) {
        case 32: gemm_rows<32>(act, M, packed, residual, K, n0, n1, bias, y, ldy); break;
        case 64: gemm_rows<64>(act, M, packed, residual, K, n0, n1, bias, y, ldy); break;
        case 128: gemm_rows<128>(act, M, packed, residual, K, n0, n1, bias, y, ldy); break;
        default: cg_q4_gemm_rows_ref(act, M, packed, residual, K, G, n0, n1, bias, y, ldy); break;
    }
}

CG_Q4_DEQUANT_ROWS_SIG(CG_SIMD_DEQUANT) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int64_t nsb = K / CG_Q4_SUPERBLOCK_ELEMS;
    std::vector<uint8_t> codes(K);  // one row of codes in natural order
    alignas(32) uint8_t lo[32], hi[32];
    for (int64_t n = n0; n < n1; ++n) {
        const cg_q4_row r = cg_q4_row_at(packed, n, K, G);
        for (int64_t sb = 0; sb < nsb; ++sb) {
            for (int i = 0; i < 4; ++i) {
                const __m256i w = _mm256_loadu_si256((const __m256i*)r.blocks[sb].qs[i]);
                _mm256_store_si256((__m256i*)lo, _mm256_and_si256(w, m4));
                _mm256_store_si256((__m256i*)hi, _mm256_and_si256(_mm256_srli_epi16(w, 4), m4));
                for (int j = 0; j < 8; ++j) {
                    memcpy(&codes[sb * 256 + 32 * j + 8 * i], lo + 4 * j, 4);
                    memcpy(&codes[sb * 256 + 32 * j + 8 * i + 4], hi + 4 * j, 4);
                }
            }
        }
        if (r.half) {
            for (int i = 0; i < 2; ++i) {
                const __m256i w = _mm256_loadu_si256((const __m256i*)r.half->qs[i]);
                _mm256_store_si256((__m256i*)lo, _mm256_and_si256(w, m4));
                _mm256_store_si256((__m256i*)hi, _mm256_and_si256(_mm256_srli_epi16(w, 4), m4));
                for (int j = 0; j < 8; ++j) {  // input 32(j % 4) + 16i + 8(j / 4) + t (+ 4 high)
                    memcpy(&codes[nsb * 256 + 32 * (j % 4) + 16 * i + 8 * (j / 4)], lo + 4 * j, 4);
                    memcpy(&codes[nsb * 256 + 32 * (j % 4) + 16 * i + 8 * (j / 4) + 4], hi + 4 * j, 4);
                }
            }
        }
        const int64_t half_end = cg_q4_half_end(K);
        for (int64_t k = half_end; k < cg_q4_chunk_end(K); k += 64) {
            const __m256i w = _mm256_loadu_si256((const __m256i*)r.chunks[(k - half_end) / 64].qs);
            _mm256_storeu_si256((__m256i*)&codes[k], _mm256_and_si256(w, m4));
            _mm256_storeu_si256((__m256i*)&codes[k + 32], _mm256_and_si256(_mm256_srli_epi16(w, 4), m4));
        }
        if (r.tail) {
            const __m128i t = _mm_loadu_si128((const __m128i*)r.tail->qs);
            _mm256_storeu_si256((__m256i*)&codes[K - 32],
                                _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4));
        }
        float* o = out + (n - n0) * K;
        for (int64_t k = 0; k < K; k += 8) {
            const int64_t g = k / G;  // 8 consecutive inputs never straddle a group (G % 32 == 0)
            const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)&codes[k]));
            const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(r.z[g])));
            _mm256_storeu_ps(o + k, _mm256_mul_ps(v, _mm256_set1_ps(_cvtsh_ss(r.d[g]))));
        }
    }
}

