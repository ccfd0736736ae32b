// Go/no-go microbenchmark (session 12, issue 13): PanelProduct's block kernel as it is (6 rows x 16
// columns of ymm sums; 8 rows as two blocks of 4) against AVX-512 tiles (one zmm = one 16-column
// panel; RxC = rows x columns), AVX-512VL ymm tiles with 32 registers ("ymm32") and an AVX2 variant
// (blocks of 6 rows, the 2 rows left over against two panels at once). One thread, C = A * B^T with
// B packed as PanelProduct.pack leaves it ([panels][k][16]), B hot in L2 (n=1024, k=256: 1 MiB).
// Every kernel's C must be bit-identical to the current form's (checked before timing).
//   clang -O2 -o /tmp/panel_kernel_zmm benchmarks/panel_kernel_zmm.c
//   flock /work/wt/.cpu.lock /tmp/panel_kernel_zmm M [N K ROUNDS SECONDS 'fragment|fragment']
// Zen 4 (EPYC, 2 vCPUs), under the lock, load 1.2-1.5, 7 alternating rounds, median [min..max] GFLOP/s:
//   m=8:  current 104.0 / 105.6; zmm 8x16 +10.8% / +9.6%; zmm 4x32 +11.3% / +9.5%; ymm32 4x32 +9.2% / +7.3%;
//         ymm 6x16+2x32 (AVX2) +6.4% / +4.4%
//   m=16: current 112.9 / 112.8; zmm 8x16 +2.4% / +2.8%; zmm 8x32 +2.6% / +2.7%; zmm 16x16 +2.5% / +2.3%
// Every zmm form tops out at 115-116 GFLOP/s, Zen 4's FMA ceiling (it splits 512-bit ops in two):
// at m=16 the current kernel already reaches 97% of it, so the lead's bar (>= 4% at m=8 and m=16) is not met.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AI static inline __attribute__((always_inline))
#define Y __attribute__((target("avx2,fma")))
#define Z __attribute__((target("avx512f,avx512vl,fma")))

// ---- ymm: R rows x one panel (2 ymm per row), like rowBlock<R> ----
AI Y void yrows(int R, int k, const float *a, int lda, const float *panel, float *c, int ldc) {
  __m256 s[6][2];
  _Pragma("clang loop unroll(full)")
  for (int r = 0; r < R; r++) s[r][0] = s[r][1] = _mm256_setzero_ps();
  for (int p = 0; p < k; p++) {
    __m256 lo = _mm256_loadu_ps(panel + p * 16), hi = _mm256_loadu_ps(panel + p * 16 + 8);
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++) {
      __m256 x = _mm256_broadcast_ss(a + r * lda + p);
      s[r][0] = _mm256_fmadd_ps(x, lo, s[r][0]);
      s[r][1] = _mm256_fmadd_ps(x, hi, s[r][1]);
    }
  }
  _Pragma("clang loop unroll(full)")
  for (int r = 0; r < R; r++) { _mm256_storeu_ps(c + r * ldc, s[r][0]); _mm256_storeu_ps(c + r * ldc + 8, s[r][1]); }
}
#define YDEF(R) __attribute__((noinline)) Y static void y##R(int k, const float *a, int lda, const float *panel, float *c, int ldc) { yrows(R, k, a, lda, panel, c, ldc); }
YDEF(2) YDEF(3) YDEF(4) YDEF(5) YDEF(6)

// current dispatch: 6-row blocks, leftover 8 as 4+4, 4 as one block (only m = 8, 16 here)
static void ymm_current(int m, int npanels, int k, const float *a, const float *packed, float *c, int ldc) {
  int twoFours = m >= 8 && m % 6 == 2;
  int full = twoFours ? m - 8 : m - m % 6, left = m - full;
  for (int q = 0; q < npanels; q++) {
    const float *panel = packed + (size_t)q * k * 16; float *cq = c + q * 16;
    int row = 0;
    for (; row < full; row += 6) y6(k, a + row * k, k, panel, cq + row * ldc, ldc);
    if (left == 8) { y4(k, a + full * k, k, panel, cq + full * ldc, ldc); y4(k, a + (full + 4) * k, k, panel, cq + (full + 4) * ldc, ldc); }
    else if (left == 4) y4(k, a + full * k, k, panel, cq + full * ldc, ldc);
    else if (left == 5) y5(k, a + full * k, k, panel, cq + full * ldc, ldc);
    else if (left == 3) y3(k, a + full * k, k, panel, cq + full * ldc, ldc);
    else if (left == 2) y2(k, a + full * k, k, panel, cq + full * ldc, ldc);
    else if (left == 1) { fprintf(stderr, "m %% 6 == 1 not modelled\n"); exit(1); }
  }
}
// ymm tiles of R rows x P panels (2 ymm per row per panel): with AVX2 (16 registers), and with
// AVX-512VL (ymm0-31)
#define YTILE(NAME, TARGET) \
AI TARGET void NAME(int R, int P, int k, const float *a, int lda, const float *panel, int pstride, float *c, int ldc) { \
  __m256 s[8][4][2]; \
  _Pragma("clang loop unroll(full)") \
  for (int r = 0; r < R; r++) _Pragma("clang loop unroll(full)") for (int j = 0; j < P; j++) s[r][j][0] = s[r][j][1] = _mm256_setzero_ps(); \
  for (int p = 0; p < k; p++) { \
    __m256 b[4][2]; \
    _Pragma("clang loop unroll(full)") \
    for (int j = 0; j < P; j++) { b[j][0] = _mm256_loadu_ps(panel + j * pstride + p * 16); b[j][1] = _mm256_loadu_ps(panel + j * pstride + p * 16 + 8); } \
    _Pragma("clang loop unroll(full)") \
    for (int r = 0; r < R; r++) { \
      __m256 x = _mm256_broadcast_ss(a + r * lda + p); \
      _Pragma("clang loop unroll(full)") \
      for (int j = 0; j < P; j++) { s[r][j][0] = _mm256_fmadd_ps(x, b[j][0], s[r][j][0]); s[r][j][1] = _mm256_fmadd_ps(x, b[j][1], s[r][j][1]); } \
    } \
  } \
  _Pragma("clang loop unroll(full)") \
  for (int r = 0; r < R; r++) _Pragma("clang loop unroll(full)") for (int j = 0; j < P; j++) { _mm256_storeu_ps(c + r * ldc + j * 16, s[r][j][0]); _mm256_storeu_ps(c + r * ldc + j * 16 + 8, s[r][j][1]); } \
}
YTILE(ytile, Y)
YTILE(yvtile, Z)
// ---- zmm: R rows x P panels (one zmm per row per panel) ----
AI Z void ztile(int R, int P, int k, const float *a, int lda, const float *panel, int pstride, float *c, int ldc) {
  __m512 s[16][4];
  _Pragma("clang loop unroll(full)")
  for (int r = 0; r < R; r++) _Pragma("clang loop unroll(full)") for (int j = 0; j < P; j++) s[r][j] = _mm512_setzero_ps();
  for (int p = 0; p < k; p++) {
    __m512 b[4];
    _Pragma("clang loop unroll(full)")
    for (int j = 0; j < P; j++) b[j] = _mm512_loadu_ps(panel + j * pstride + p * 16);
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++) {
      __m512 x = _mm512_set1_ps(a[r * lda + p]);
      _Pragma("clang loop unroll(full)")
      for (int j = 0; j < P; j++) s[r][j] = _mm512_fmadd_ps(x, b[j], s[r][j]);
    }
  }
  _Pragma("clang loop unroll(full)")
  for (int r = 0; r < R; r++) _Pragma("clang loop unroll(full)") for (int j = 0; j < P; j++) _mm512_storeu_ps(c + r * ldc + j * 16, s[r][j]);
}
#define ZDEF(R, P) __attribute__((noinline)) Z static void z##R##x##P(int k, const float *a, int lda, const float *panel, int ps, float *c, int ldc) { ztile(R, P, k, a, lda, panel, ps, c, ldc); }
ZDEF(8,1) ZDEF(8,2) ZDEF(8,3) ZDEF(6,2) ZDEF(6,3) ZDEF(6,4) ZDEF(4,3) ZDEF(4,4) ZDEF(4,2) ZDEF(12,1) ZDEF(12,2) ZDEF(16,1)
#define YTDEF(R, P) __attribute__((noinline)) Y static void yt##R##x##P(int k, const float *a, int lda, const float *panel, int ps, float *c, int ldc) { ytile(R, P, k, a, lda, panel, ps, c, ldc); }
YTDEF(4,2) YTDEF(6,1) YTDEF(2,2) YTDEF(3,2)
#define YVDEF(R, P) __attribute__((noinline)) Z static void yv##R##x##P(int k, const float *a, int lda, const float *panel, int ps, float *c, int ldc) { yvtile(R, P, k, a, lda, panel, ps, c, ldc); }
YVDEF(4,2) YVDEF(6,2) YVDEF(8,1)

typedef void (*tilefn)(int, const float *, int, const float *, int, float *, int);
// generic driver: rows in blocks of R (m % R == 0), panels in groups of P (npanels % P == 0)
static int tiled(tilefn f, int R, int P, int m, int npanels, int k, const float *a, const float *packed, float *c, int ldc) {
  if (m % R || npanels % P) return 0;
  for (int q = 0; q < npanels; q += P)
    for (int row = 0; row < m; row += R) f(k, a + row * k, k, packed + (size_t)q * k * 16, k * 16, c + row * ldc + q * 16, ldc);
  return 1;
}
// mixed driver for m=16 with 12-row tiles plus a 4-row tile
static void tiled12(tilefn f12, tilefn f4, int P, int npanels, int k, const float *a, const float *packed, float *c, int ldc) {
  for (int q = 0; q < npanels; q += P) {
    f12(k, a, k, packed + (size_t)q * k * 16, k * 16, c + q * 16, ldc);
    f4(k, a + 12 * k, k, packed + (size_t)q * k * 16, k * 16, c + 12 * ldc + q * 16, ldc);
  }
}

// 1 if `name` contains one of the '|'-separated fragments of `list`.
static int selected(const char *list, const char *name) {
  char buf[512]; snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save)) if (strstr(name, t)) return 1;
  return 0;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

enum { NK = 21 };
static const char *names[NK] = {"ymm 6x16 (current)", "ymm 4x32", "zmm 8x16", "zmm 8x32", "zmm 8x48", "zmm 6x32", "zmm 6x48", "zmm 6x64",
                                "zmm 4x48", "zmm 4x64", "zmm 4x32", "zmm 12x16", "zmm 12x32(+4x32)", "zmm 16x16", "zmm 12x16(+4x48)", "ymm 6x16 tile", "ymm32 4x32", "ymm32 6x32", "ymm32 8x16", "ymm 6x16+2x32", "ymm 6x16+3x32"};
static int run(int which, int m, int np, int k, const float *a, const float *B, float *c, int ldc) {
  switch (which) {
  case 0: ymm_current(m, np, k, a, B, c, ldc); return 1;
  case 1: return tiled(yt4x2, 4, 2, m, np, k, a, B, c, ldc);
  case 2: return tiled(z8x1, 8, 1, m, np, k, a, B, c, ldc);
  case 3: return tiled(z8x2, 8, 2, m, np, k, a, B, c, ldc);
  case 4: if (np % 3) return 0; return tiled(z8x3, 8, 3, m, np, k, a, B, c, ldc);
  case 5: if (m % 6) return 0; return tiled(z6x2, 6, 2, m, np, k, a, B, c, ldc);
  case 6: if (m % 6 || np % 3) return 0; return tiled(z6x3, 6, 3, m, np, k, a, B, c, ldc);
  case 7: if (m % 6) return 0; return tiled(z6x4, 6, 4, m, np, k, a, B, c, ldc);
  case 8: if (np % 3) return 0; return tiled(z4x3, 4, 3, m, np, k, a, B, c, ldc);
  case 9: return tiled(z4x4, 4, 4, m, np, k, a, B, c, ldc);
  case 10: return tiled(z4x2, 4, 2, m, np, k, a, B, c, ldc);
  case 11: if (m != 12 && m != 24) return 0; return tiled(z12x1, 12, 1, m, np, k, a, B, c, ldc);
  case 12: if (m != 16) return 0; tiled12(z12x2, z4x2, 2, np, k, a, B, c, ldc); return 1;
  case 13: if (m % 16) return 0; return tiled(z16x1, 16, 1, m, np, k, a, B, c, ldc);
  case 14: if (m != 16 || np % 3) return 0; for (int q = 0; q < np; q++) z12x1(k, a, k, B + (size_t)q * k * 16, k * 16, c + q * 16, ldc);
           for (int q = 0; q < np; q += 3) z4x3(k, a + 12 * k, k, B + (size_t)q * k * 16, k * 16, c + 12 * ldc + q * 16, ldc); return 1;
  case 15: if (m % 6) return 0; return tiled(yt6x1, 6, 1, m, np, k, a, B, c, ldc);
  case 16: return tiled(yv4x2, 4, 2, m, np, k, a, B, c, ldc);
  case 17: if (m % 6) return 0; return tiled(yv6x2, 6, 2, m, np, k, a, B, c, ldc);
  case 18: return tiled(yv8x1, 8, 1, m, np, k, a, B, c, ldc);
  case 19: case 20: { int R2 = which == 19 ? 2 : 3; if (m % 6 != R2) return 0; tilefn f = R2 == 2 ? yt2x2 : yt3x2;
    for (int q = 0; q < np; q += 2) {
      for (int j = 0; j < 2; j++) for (int row = 0; row + 6 <= m; row += 6) y6(k, a + row * k, k, B + (size_t)(q + j) * k * 16, c + row * ldc + (q + j) * 16, ldc);
      f(k, a + (m - R2) * k, k, B + (size_t)q * k * 16, k * 16, c + (m - R2) * ldc + q * 16, ldc);
    } return 1; }
  }
  return 0;
}

int main(int argc, char **argv) {
  int m = argc > 1 ? atoi(argv[1]) : 8, n = argc > 2 ? atoi(argv[2]) : 1024, k = argc > 3 ? atoi(argv[3]) : 256;
  int rounds = argc > 4 ? atoi(argv[4]) : 5; double secs = argc > 5 ? atof(argv[5]) : 0.2;
  const char *only = argc > 6 ? argv[6] : NULL;
  int np = n / 16;
  float *a = aligned_alloc(64, sizeof(float) * m * k), *B = aligned_alloc(64, sizeof(float) * (size_t)n * k);
  float *c = aligned_alloc(64, sizeof(float) * m * n), *ref = aligned_alloc(64, sizeof(float) * m * n);
  srand(1);
  for (int i = 0; i < m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
  for (size_t i = 0; i < (size_t)n * k; i++) B[i] = rand() / (float)RAND_MAX - 0.5f;
  ymm_current(m, np, k, a, B, ref, n);
  int ok[NK] = {0};
  for (int w = 0; w < NK; w++) {
    if (w != 0 && only && !selected(only, names[w])) continue;
    memset(c, 0, sizeof(float) * m * n);
    if (!run(w, m, np, k, a, B, c, n)) continue;
    if (memcmp(c, ref, sizeof(float) * m * n)) { printf("%s: NOT bit-identical\n", names[w]); continue; }
    ok[w] = 1;
  }
  double g[NK][64]; int cnt = 0;
  double flops = 2.0 * m * n * k;
  for (int r = 0; r < rounds; r++, cnt++) {
    for (int w0 = 0; w0 < NK; w0++) {
      int w = (r % 2) ? NK - 1 - w0 : w0; // alternate order
      if (!ok[w]) continue;
      long it = 0; double t0 = now(), t;
      do { for (int i = 0; i < 20; i++) run(w, m, np, k, a, B, c, n); it += 20; t = now(); } while (t - t0 < secs);
      g[w][r] = flops * it / (t - t0) * 1e-9;
    }
  }
  printf("m=%d n=%d k=%d rounds=%d x %.2fs  GFLOP/s: median [min..max]  vs ymm current\n", m, n, k, rounds, secs);
  double base = 0;
  for (int w = 0; w < NK; w++) {
    if (!ok[w]) continue;
    double v[64]; memcpy(v, g[w], sizeof(double) * cnt);
    for (int i = 0; i < cnt; i++) for (int j = i + 1; j < cnt; j++) if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
    double med = v[cnt / 2];
    if (w == 0) base = med;
    printf("  %-20s %6.1f [%6.1f..%6.1f]  %+5.1f%%\n", names[w], med, v[0], v[cnt - 1], 100 * (med / base - 1));
  }
  return 0;
}
