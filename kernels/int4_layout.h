// The packed int4 weight layout, defined once. Mirrored in codegeex_lsp/quant/packing.py; the
// checkpoint stores CG_Q4_LAYOUT_VERSION and a loader refuses any other version.
//
// A weight W [N, K] (N output rows, K inputs) quantized in groups of G consecutive inputs
// (G in {32, 64, 128}, K % G == 0) is one uint8 tensor [N, row_bytes], one row per output:
//
//   offset 0            qs    K/2 bytes   the codes q in 0..15 (below)
//   offset K/2          d     ng fp16     per-group scale              (ng = K / G)
//   offset K/2 + 2*ng   z     ng uint8    per-group zero point, 0..15 (symmetric: all 8)
//   offset K/2 + 3*ng   zero padding up to row_bytes: at least 3 bytes (kernels may load zero points
//                       as whole dwords), then up to a multiple of CG_Q4_ROW_ALIGN
//
// w[n, k] = d[g] * (q[k] - z[g]), g = k / G.
//
// qs, in input order, is made of these regions (S = K / 256 * 256):
//   [0, S)       cg_q4_superblocks of 256 inputs = 8 blocks of 32, four 32-byte vectors each: in
//                vector i, byte 4j + t (block j in 0..7, t in 0..3) holds input 32j + 8i + t in its
//                low nibble and input 32j + 8i + 4 + t in its high nibble;
//   [S, S + 128) if K - S >= 128: one cg_q4_halfblock of 4 blocks, two vectors: in vector i, byte
//                4j + t holds input 32(j % 4) + 16i + 8(j / 4) + t (low) and that + 4 (high);
//   then         cg_q4_chunks of 64 inputs: byte j holds input j (low) and 32 + j (high);
//   then         if K % 64 == 32, a cg_q4_tail of 32 inputs: byte j holds input j and 16 + j.
// In the (half) blocks every 32-bit lane of an unpacked vector belongs to one 32-input block, so a
// kernel sums them per lane (int8 x uint4 products) with no horizontal reduction. All the models
// this project runs have K % 256 in {0, 128} (896, 4864, 1536, 8960, 3584, 4096, 13696 ...); the
// chunks and the tail only serve other sizes.
// Rows are independent, so a thread streams a contiguous range of rows, and an embedding lookup of
// token t is a dequantization of row t. The CPU kernels quantize activations to int8 per block of
// CG_Q4_ACT_BLOCK inputs and store them in the same order as the codes (cg_q4_act_pos).
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CG_Q4_LAYOUT_VERSION 2
#define CG_Q4_SUPERBLOCK_ELEMS 256
#define CG_Q4_CHUNK_ELEMS 64
#define CG_Q4_TAIL_ELEMS 32
#define CG_Q4_ACT_BLOCK 32
#define CG_Q4_ROW_ALIGN 32
#define CG_Q4_SYM_ZERO 8

typedef struct {
    uint8_t qs[4][32];  // [vector i][4 * sub-block j + t]: inputs 32j + 8i + t (low) and + 4 (high)
} cg_q4_superblock;
static_assert(sizeof(cg_q4_superblock) == 128, "cg_q4_superblock must be 256 nibbles, no padding");

typedef struct {
    uint8_t qs[2][32];  // [vector i][4j + t]: inputs 32(j % 4) + 16i + 8(j / 4) + t (low) and + 4 (high)
} cg_q4_halfblock;
static_assert(sizeof(cg_q4_halfblock) == 64, "cg_q4_halfblock must be 128 nibbles, no padding");

typedef struct {
    uint8_t qs[CG_Q4_CHUNK_ELEMS / 2];  // low nibble: input j, high nibble: input 32 + j
} cg_q4_chunk;
static_assert(sizeof(cg_q4_chunk) == 32, "cg_q4_chunk must be 64 nibbles, no padding");

typedef struct {
    uint8_t qs[CG_Q4_TAIL_ELEMS / 2];  // low nibble: input j, high nibble: input 16 + j
} cg_q4_tail;
static_assert(sizeof(cg_q4_tail) == 16, "cg_q4_tail must be 32 nibbles, no padding");

static constexpr int64_t cg_q4_groups(int64_t K, int64_t G) { return K / G; }

static constexpr int64_t cg_q4_row_bytes(int64_t K, int64_t G) {
    return (K / 2 + 3 * cg_q4_groups(K, G) + 3 + CG_Q4_ROW_ALIGN - 1) / CG_Q4_ROW_ALIGN * CG_Q4_ROW_ALIGN;
}
static_assert(cg_q4_row_bytes(896, 32) == 544, "qwen2.5-0.5b q/o/gate_up rows, G=32: 448 + 84 + 3 -> 544");
static_assert(cg_q4_row_bytes(4864, 128) == 2560, "qwen2.5-0.5b down rows, G=128: 2432 + 114 + 3 -> 2560");
static_assert(cg_q4_row_bytes(32, 32) == 32 && cg_q4_row_bytes(64, 32) == 64, "3 bytes of slack");

// Region ends: super-blocks, half-block, chunks (the tail runs to K).
static constexpr int64_t cg_q4_sb_end(int64_t K) { return K / 256 * 256; }
static constexpr int64_t cg_q4_half_end(int64_t K) { return cg_q4_sb_end(K) + (K % 256 >= 128 ? 128 : 0); }
static constexpr int64_t cg_q4_chunk_end(int64_t K) {
    return cg_q4_half_end(K) + (K - cg_q4_half_end(K)) / 64 * 64;
}

// Where input k of a row lives: byte offset into qs, and 0 (low nibble) or 4 (high nibble).
static constexpr int64_t cg_q4_byte(int64_t K, int64_t k) {
    return k < cg_q4_sb_end(K) ? k / 256 * 128 + (k % 32 / 8) * 32 + (k % 256 / 32) * 4 + k % 4
           : k < cg_q4_half_end(K)
               ? cg_q4_sb_end(K) / 2 + ((k - cg_q4_sb_end(K)) % 32 / 16) * 32 +
                     ((k - cg_q4_sb_end(K)) / 32 + 4 * ((k % 16) / 8)) * 4 + k % 4
           : k < cg_q4_chunk_end(K) ? cg_q4_half_end(K) / 2 + (k - cg_q4_half_end(K)) / 64 * 32 + k % 32
                                    : cg_q4_chunk_end(K) / 2 + k % 16;
}
static constexpr int cg_q4_shift(int64_t K, int64_t k) {
    return k < cg_q4_half_end(K)    ? (k % 8 / 4) * 4
           : k < cg_q4_chunk_end(K) ? ((k - cg_q4_half_end(K)) % 64 / 32) * 4
                                    : (k % 32 / 16) * 4;
}
static_assert(cg_q4_byte(512, 0) == 0 && cg_q4_byte(512, 4) == 0 && cg_q4_shift(512, 4) == 4, "lane 0");
static_assert(cg_q4_byte(512, 32) == 4 && cg_q4_byte(512, 8) == 32 && cg_q4_byte(512, 256) == 128, "order");
static_assert(cg_q4_byte(384, 256 + 32 + 16 + 8 + 5) == 128 + 32 + 4 * 5 + 1 && cg_q4_shift(384, 317) == 4, "half");
static_assert(cg_q4_byte(480, 384 + 33) == 192 + 1 && cg_q4_shift(480, 384 + 33) == 4, "chunk after half");
static_assert(cg_q4_byte(480, 448 + 17) == 224 + 1 && cg_q4_shift(480, 448 + 17) == 4, "32-input tail");

// Where the kernels keep the int8 activation of input k: the same order, one byte per input.
static constexpr int64_t cg_q4_act_pos(int64_t K, int64_t k) {
    return k < cg_q4_sb_end(K)
               ? k / 256 * 256 + (k % 32 / 8) * 64 + (k % 8 / 4) * 32 + (k % 256 / 32) * 4 + k % 4
           : k < cg_q4_half_end(K)
               ? cg_q4_sb_end(K) + ((k - cg_q4_sb_end(K)) % 32 / 16) * 64 + (k % 8 / 4) * 32 +
                     ((k - cg_q4_sb_end(K)) / 32 + 4 * ((k % 16) / 8)) * 4 + k % 4
               : k;
}
static_assert(cg_q4_act_pos(256, 4) == 32 && cg_q4_act_pos(256, 8) == 64 && cg_q4_act_pos(256, 33) == 5, "act");
static_assert(cg_q4_act_pos(384, 256 + 32 + 16 + 8 + 5) == 256 + 64 + 32 + 4 * 5 + 1, "act half-block");

// One row of the packed weight, as the kernels read it.
typedef struct {
    const cg_q4_superblock* blocks;  // K / 256 super-blocks
    const cg_q4_halfblock* half;     // NULL unless K % 256 >= 128
    const cg_q4_chunk* chunks;       // then the 64-input chunks
    const cg_q4_tail* tail;          // NULL unless K % 64 == 32
    const uint16_t* d;               // ng fp16 scales (2-byte aligned: K/2 is a multiple of 16)
    const uint8_t* z;                // ng zero points
} cg_q4_row;

static inline cg_q4_row cg_q4_row_at(const uint8_t* packed, int64_t n, int64_t K, int64_t G) {
    const uint8_t* base = packed + n * cg_q4_row_bytes(K, G);
    cg_q4_row r;
    r.blocks = (const cg_q4_superblock*)base;
    r.half = cg_q4_half_end(K) > cg_q4_sb_end(K) ? (const cg_q4_halfblock*)(base + cg_q4_sb_end(K) / 2) : NULL;
    r.chunks = (const cg_q4_chunk*)(base + cg_q4_half_end(K) / 2);
    r.tail = (K % CG_Q4_CHUNK_ELEMS) ? (const cg_q4_tail*)(base + cg_q4_chunk_end(K) / 2) : NULL;
    r.d = (const uint16_t*)(base + K / 2);
    r.z = base + K / 2 + 2 * cg_q4_groups(K, G);
    return r;
}
