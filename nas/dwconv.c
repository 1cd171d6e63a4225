/* hybrid-nas: a depthwise 3x3 convolution (padding 1, stride 1 or 2) with a channel multiplier m (output
 * channel o reads input channel o / m), float32, channels_last (NHWC) maps. See nas/dwconv.py.
 *
 * Each input row is expanded to the output's channels (input channel c repeated m times) in a padded layout in
 * which the three taps of a kernel row are contiguous spans of OW * O floats: every inner loop is then one long
 * vector loop over an output row, whatever m, the map side or the stride. Stride 2 stores the even and the odd
 * padded pixels of a row apart (two phases), so that its taps are contiguous spans too. Each output (and each
 * weight-gradient chunk) is summed in registers over its taps before it is stored once.
 */
#include <stddef.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4)));  /* 16 floats, unaligned access allowed */
#define VL 16

typedef struct {
    int B, H, W, C, m, s, OH, OW;
    size_t O, span, pspan, rowlen, P0;
} geom;

static geom make_geom(int B, int H, int W, int C, int m, int s) {
    geom g;
    g.B = B; g.H = H; g.W = W; g.C = C; g.m = m; g.s = s;
    g.OH = (H - 1) / s + 1;
    g.OW = (W - 1) / s + 1;
    g.O = (size_t)C * m;
    g.span = (size_t)g.OW * g.O;          /* one output row */
    g.pspan = (size_t)(g.OW + 2) * g.O;   /* one output row with a zero pixel each side */
    g.P0 = s == 1 ? 0 : (size_t)g.OW + 1; /* stride 2: where the odd pixels start */
    g.rowlen = s == 1 ? (size_t)(W + 2) * g.O : (size_t)(2 * g.OW + 1) * g.O;
    return g;
}

/* where padded pixel p (input column p - 1) of an expanded row starts */
static inline size_t px(const geom *g, int p) {
    if (g->s == 1) return (size_t)p * g->O;
    return ((p & 1) ? g->P0 + (size_t)(p >> 1) : (size_t)(p >> 1)) * g->O;
}

/* BODY(M) with M a constant where m is 2, 3, 4 or 6 (the compiler vectorises those loops), m elsewhere */
#define BY_M(BODY) switch (m) { case 2: BODY(2) break; case 3: BODY(3) break; case 4: BODY(4) break; \
                                case 6: BODY(6) break; default: BODY(m) }
#define EXPAND_M(M) for (int c = 0; c < C; c++) { float v = xi[c]; for (int j = 0; j < (M); j++) e[c * (M) + j] = v; }

/* input row `xr` ([W][C]; NULL: a padding row) expanded to `er` */
static void expand(const geom *g, const float *restrict xr, float *restrict er) {
    int C = g->C, m = g->m, last = g->s == 1 ? g->W + 1 : 2 * g->OW;  /* the padded pixels the taps read */
    if (xr == NULL) { memset(er, 0, sizeof(float) * g->rowlen); return; }
    memset(er + px(g, 0), 0, sizeof(float) * g->O);
    for (int p = g->W + 1; p <= last; p++) memset(er + px(g, p), 0, sizeof(float) * g->O);
    for (int p = 1; p <= g->W && p <= last; p++) {
        float *restrict e = er + px(g, p);
        const float *restrict xi = xr + (size_t)(p - 1) * C;
        if (m == 1) memcpy(e, xi, sizeof(float) * C);
        else BY_M(EXPAND_M)
    }
}

#define REDUCE_M(M) for (int c = 0; c < C; c++) { float a = 0.f; for (int j = 0; j < (M); j++) a += r[c * (M) + j]; q[c] = a; }

/* q[c] = sum over j of r[c * m + j] */
static void reduce(const float *restrict r, float *restrict q, int C, int m) {
    if (m == 1) memcpy(q, r, sizeof(float) * C);
    else BY_M(REDUCE_M)
}

/* y[p] = init[p] (or 0) + sum over the n taps of a[t][p] * b[t][p], p < len */
static void taps(float *restrict y, const float *restrict init, const float **a, const float **b, int n, size_t len) {
    size_t p = 0;
    for (; p + 2 * VL <= len; p += 2 * VL) {
        v16 s0 = {0}, s1 = {0};
        if (init) { s0 = *(const v16 *)(init + p); s1 = *(const v16 *)(init + p + VL); }
        for (int t = 0; t < n; t++) {
            s0 += *(const v16 *)(a[t] + p) * *(const v16 *)(b[t] + p);
            s1 += *(const v16 *)(a[t] + p + VL) * *(const v16 *)(b[t] + p + VL);
        }
        *(v16 *)(y + p) = s0;
        *(v16 *)(y + p + VL) = s1;
    }
    for (; p < len; p++) {
        float s = init ? init[p] : 0.f;
        for (int t = 0; t < n; t++) s += a[t][p] * b[t][p];
        y[p] = s;
    }
}

/* the weights [O][9] tiled along an output row: wrep[t][ow * O + o] = w[o][t]; with `pad`, one zero pixel each
   side (row length pspan) */
static void tile(const geom *g, const float *w, float *wrep, int pad) {
    size_t len = pad ? g->pspan : g->span;
    for (int t = 0; t < 9; t++) {
        float *r = wrep + t * len;
        if (pad) { memset(r, 0, sizeof(float) * g->O); memset(r + len - g->O, 0, sizeof(float) * g->O); r += g->O; }
        for (int ow = 0; ow < g->OW; ow++)
            for (size_t o = 0; o < g->O; o++) r[ow * g->O + o] = w[o * 9 + t];
    }
}

/* floats of workspace a call needs */
size_t dwconv_workspace(int backward, int B, int H, int W, int C, int m, int s) {
    geom g = make_geom(B, H, W, C, m, s);
    if (!backward) return 10 * g.span + 3 * g.rowlen;
    size_t ge = g.s == 1 ? g.span : (size_t)H * g.rowlen;
    return 9 * g.span + 9 * g.pspan + (size_t)(H + 2) * g.rowlen + 9 * g.span + (size_t)g.OH * g.pspan + ge;
}

/* y [B][OH][OW][O] = conv(x [B][H][W][C], w [O][9]) (+ bias [O] if not NULL) */
void dwconv_forward(const float *x, const float *w, const float *bias, float *y, int B, int H, int W, int C, int m,
                    int s, float *ws) {
    geom g = make_geom(B, H, W, C, m, s);
    float *wrep = ws, *brep = ws + 9 * g.span, *rows = brep + g.span;
    tile(&g, w, wrep, 0);
    if (bias)
        for (int ow = 0; ow < g.OW; ow++) memcpy(brep + ow * g.O, bias, sizeof(float) * g.O);
    const float *a[9], *b[9];
    for (int n = 0; n < B; n++) {
        const float *xb = x + (size_t)n * H * W * C;
        int tag[3] = {-1, -1, -1};
        for (int oh = 0; oh < g.OH; oh++) {
            int k = 0;
            for (int kh = 0; kh < 3; kh++) {
                int ih = oh * s + kh - 1;
                if (ih < 0 || ih >= H) continue;
                float *er = rows + (size_t)(ih % 3) * g.rowlen;
                if (tag[ih % 3] != ih) { expand(&g, xb + (size_t)ih * W * C, er); tag[ih % 3] = ih; }
                for (int kw = 0; kw < 3; kw++) {
                    a[k] = er + px(&g, kw);
                    b[k] = wrep + (size_t)(kh * 3 + kw) * g.span;
                    k++;
                }
            }
            taps(y + ((size_t)n * g.OH + oh) * g.span, bias ? brep : NULL, a, b, k, g.span);
        }
    }
}

/* weight gradient of one image: gacc[t][p] += sum over output rows of gy[oh][p] * xe[oh * s + kh][px(kw) + p],
   xe holding the image's expanded rows with a zero row above and below (padded row index ih + 1) */
static void weight_grad(const geom *g, const float *gyb, const float *xe, float *gacc) {
    size_t span = g->span, p = 0;
    for (; p + VL <= span; p += VL) {
        v16 acc[9];
        for (int t = 0; t < 9; t++) acc[t] = (v16){0};
        for (int oh = 0; oh < g->OH; oh++) {
            v16 gv = *(const v16 *)(gyb + (size_t)oh * span + p);
            const float *r = xe + (size_t)(oh * g->s) * g->rowlen + p;
#pragma GCC unroll 3
            for (int kh = 0; kh < 3; kh++) {
                const float *rk = r + (size_t)kh * g->rowlen;
                acc[kh * 3 + 0] += gv * *(const v16 *)(rk + px(g, 0));
                acc[kh * 3 + 1] += gv * *(const v16 *)(rk + px(g, 1));
                acc[kh * 3 + 2] += gv * *(const v16 *)(rk + px(g, 2));
            }
        }
        for (int t = 0; t < 9; t++) *(v16 *)(gacc + t * span + p) += acc[t];
    }
    for (; p < span; p++)
        for (int oh = 0; oh < g->OH; oh++) {
            float gv = gyb[(size_t)oh * span + p];
            const float *r = xe + (size_t)(oh * g->s) * g->rowlen + p;
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) gacc[(kh * 3 + kw) * span + p] += gv * r[kh * g->rowlen + px(g, kw)];
        }
}

/* gx [B][H][W][C] (if not NULL) and gw [O][9] (if not NULL) from gy [B][OH][OW][O] */
void dwconv_backward(const float *x, const float *w, const float *gy, float *gx, float *gw, int B, int H, int W,
                     int C, int m, int s, float *ws) {
    geom g = make_geom(B, H, W, C, m, s);
    size_t O = g.O, span = g.span, pspan = g.pspan;
    float *wrep = ws, *wpad = wrep + 9 * span, *xe = wpad + 9 * pspan, *gacc = xe + (size_t)(H + 2) * g.rowlen;
    float *gyp = gacc + 9 * span, *ge = gyp + (size_t)g.OH * pspan;
    tile(&g, w, wrep, 0);
    if (s == 1) tile(&g, w, wpad, 1);
    if (gw) {
        memset(gacc, 0, sizeof(float) * 9 * span);
        expand(&g, NULL, xe);
        expand(&g, NULL, xe + (size_t)(H + 1) * g.rowlen);
    }
    for (int n = 0; n < B; n++) {
        const float *gyb = gy + (size_t)n * g.OH * span;
        if (gw) {
            const float *xb = x + (size_t)n * H * W * C;
            for (int ih = 0; ih < H; ih++) expand(&g, xb + (size_t)ih * W * C, xe + (size_t)(ih + 1) * g.rowlen);
            weight_grad(&g, gyb, xe, gacc);
        }
        if (!gx) continue;
        float *gxb = gx + (size_t)n * H * W * C;
        if (s == 1) {
            /* gather: input pixel iw gets output pixel ow = iw + 1 - kw, at padded index iw + 2 - kw */
            for (int oh = 0; oh < g.OH; oh++) {
                float *d = gyp + (size_t)oh * pspan;
                memset(d, 0, sizeof(float) * O);
                memcpy(d + O, gyb + (size_t)oh * span, sizeof(float) * span);
                memset(d + O + span, 0, sizeof(float) * O);
            }
            const float *a[9], *b[9];
            for (int ih = 0; ih < H; ih++) {
                int k = 0;
                for (int kh = 0; kh < 3; kh++) {
                    int oh = ih + 1 - kh;
                    if (oh < 0 || oh >= g.OH) continue;
                    for (int kw = 0; kw < 3; kw++) {
                        a[k] = gyp + (size_t)oh * pspan + (size_t)(2 - kw) * O;
                        b[k] = wpad + (size_t)(kh * 3 + kw) * pspan + (size_t)(2 - kw) * O;
                        k++;
                    }
                }
                taps(ge, NULL, a, b, k, span);
                for (int iw = 0; iw < W; iw++) reduce(ge + (size_t)iw * O, gxb + ((size_t)ih * W + iw) * C, C, m);
            }
        } else {
            /* scatter into the input rows' expanded layout, then reduce each pixel over its m channels */
            memset(ge, 0, sizeof(float) * (size_t)H * g.rowlen);
            for (int oh = 0; oh < g.OH; oh++) {
                const float *restrict gr = gyb + (size_t)oh * span;
                for (int kh = 0; kh < 3; kh++) {
                    int ih = oh * s + kh - 1;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < 3; kw++) {
                        float *restrict d = ge + (size_t)ih * g.rowlen + px(&g, kw);
                        const float *restrict wt = wrep + (size_t)(kh * 3 + kw) * span;
                        for (size_t p = 0; p < span; p++) d[p] += gr[p] * wt[p];
                    }
                }
            }
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    float *q = gxb + ((size_t)ih * W + iw) * C;
                    if (iw + 1 > 2 * g.OW) memset(q, 0, sizeof(float) * C);  /* read by no output */
                    else reduce(ge + (size_t)ih * g.rowlen + px(&g, iw + 1), q, C, m);
                }
        }
    }
    if (gw)
        for (size_t o = 0; o < O; o++)
            for (int t = 0; t < 9; t++) {
                float a = 0.f;
                for (int ow = 0; ow < g.OW; ow++) a += gacc[t * span + (size_t)ow * O + o];
                gw[o * 9 + t] = a;
            }
}
