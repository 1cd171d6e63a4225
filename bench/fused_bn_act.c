/* Fused BatchNorm (training, batch statistics) + activation over a channels-last float tensor viewed as
   R rows of C channels. act: 0 none, 1 relu, 2 silu, 3 hardswish. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

static inline float exp_poly(float x) {
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  /* NaN passes through both compares */
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return y * scale;
}

static inline float act_fwd(float z, int act) {
    switch (act) {
    case 1: return z > 0.0f ? z : (z == z ? 0.0f : z);
    case 2: { float s = 1.0f / (1.0f + exp_poly(-z)); return z * s; }
    case 3: { float t = z + 3.0f; t = t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t); return z * t * (1.0f / 6.0f); }
    default: return z;
    }
}

static inline float act_grad(float z, int act) {
    switch (act) {
    case 1: return z > 0.0f ? 1.0f : 0.0f;
    case 2: { float s = 1.0f / (1.0f + exp_poly(-z)); return s * (1.0f + z * (1.0f - s)); }
    case 3: return z < -3.0f ? 0.0f : (z > 3.0f ? 1.0f : (2.0f * z + 3.0f) * (1.0f / 6.0f));
    default: return 1.0f;
    }
}

/* stats out: [mean(C), invstd(C), var_unbiased(C)] */
static inline void fwd_impl(const float *restrict x, float *restrict y, int64_t R, int64_t C, const float *restrict w, const float *restrict b, float eps,
                    int act, float *restrict stats) {
    double *restrict s1 = calloc(2 * C, sizeof(double)); double *restrict s2 = s1 + C;
    float *restrict k = malloc(3 * C * sizeof(float)); float *restrict a = k + C; float *restrict bb = a + C;
    memcpy(k, x, C * sizeof(float));
    float *restrict t1 = malloc(2 * C * sizeof(float)); float *restrict t2 = t1 + C;
    for (int64_t r0 = 0; r0 < R; r0 += 64) {  /* float partial sums over 64 rows, then into double */
        int64_t r1 = r0 + 64 < R ? r0 + 64 : R;
        memset(t1, 0, 2 * C * sizeof(float));
        for (int64_t r = r0; r < r1; r++) {
            const float *restrict xr = x + r * C;
            for (int64_t c = 0; c < C; c++) { float d = xr[c] - k[c]; t1[c] += d; t2[c] += d * d; }
        }
        for (int64_t c = 0; c < C; c++) { s1[c] += t1[c]; s2[c] += t2[c]; }
    }
    free(t1);
    for (int64_t c = 0; c < C; c++) {
        double m = s1[c] / R, var = s2[c] / R - m * m;
        if (var < 0) var = 0;
        float inv = (float)(1.0 / sqrt(var + eps));
        stats[c] = (float)(k[c] + m);
        stats[C + c] = inv;
        stats[2 * C + c] = (float)(R > 1 ? var * R / (R - 1) : var);
        a[c] = w[c] * inv;
        bb[c] = b[c] - stats[c] * a[c];
    }
    for (int64_t r = 0; r < R; r++) {
        const float *restrict xr = x + r * C; float *restrict yr = y + r * C;
        for (int64_t c = 0; c < C; c++) yr[c] = act_fwd(a[c] * xr[c] + bb[c], act);
    }
    free(s1); free(k);
}

static inline void bwd_impl(const float *restrict g, const float *restrict x, float *restrict dx, int64_t R, int64_t C, const float *w,
                     const float *b, const float *stats, int act, float *dw, float *db) {
    const float *mean = stats, *inv = stats + C;
    double *restrict sd = calloc(2 * C, sizeof(double)); double *restrict sdx = sd + C;
    float *restrict a = malloc(5 * C * sizeof(float)); float *restrict bb = a + C; float *restrict k1 = bb + C; float *restrict k2 = k1 + C; float *restrict k3 = k2 + C;
    for (int64_t c = 0; c < C; c++) { a[c] = w[c] * inv[c]; bb[c] = b[c] - mean[c] * a[c]; }
    float *restrict u1 = calloc(2 * C, sizeof(float)); float *restrict u2 = u1 + C;
    for (int64_t r = 0; r < R; r++) {
        const float *restrict gr = g + r * C; const float *restrict xr = x + r * C; float *restrict dr = dx + r * C;
        for (int64_t c = 0; c < C; c++) {
            float dz = gr[c] * act_grad(a[c] * xr[c] + bb[c], act);
            dr[c] = dz; u1[c] += dz; u2[c] += dz * (xr[c] - mean[c]);
        }
        if ((r & 63) == 63 || r == R - 1) {
            for (int64_t c = 0; c < C; c++) { sd[c] += u1[c]; sdx[c] += u2[c]; u1[c] = 0; u2[c] = 0; }
        }
    }
    free(u1);
    for (int64_t c = 0; c < C; c++) {
        db[c] = (float)sd[c];
        dw[c] = (float)(sdx[c] * inv[c]);
        k1[c] = a[c];
        k2[c] = (float)(-(double)a[c] * inv[c] * inv[c] * sdx[c] / R);
        k3[c] = (float)(-(double)a[c] * sd[c] / R) - k2[c] * mean[c];
    }
    for (int64_t r = 0; r < R; r++) {
        const float *restrict xr = x + r * C; float *restrict dr = dx + r * C;
        for (int64_t c = 0; c < C; c++) dr[c] = k1[c] * dr[c] + k2[c] * xr[c] + k3[c];
    }
    free(sd); free(a);
}

void bn_act_forward(const float *x, float *y, int64_t R, int64_t C, const float *w, const float *b, float eps,
                    int act, float *stats) {
    switch (act) {
    case 1: fwd_impl(x, y, R, C, w, b, eps, 1, stats); break;
    case 2: fwd_impl(x, y, R, C, w, b, eps, 2, stats); break;
    case 3: fwd_impl(x, y, R, C, w, b, eps, 3, stats); break;
    default: fwd_impl(x, y, R, C, w, b, eps, 0, stats);
    }
}
void bn_act_backward(const float *g, const float *x, float *dx, int64_t R, int64_t C, const float *w,
                     const float *b, const float *stats, int act, float *dw, float *db) {
    switch (act) {
    case 1: bwd_impl(g, x, dx, R, C, w, b, stats, 1, dw, db); break;
    case 2: bwd_impl(g, x, dx, R, C, w, b, stats, 2, dw, db); break;
    case 3: bwd_impl(g, x, dx, R, C, w, b, stats, 3, dw, db); break;
    default: bwd_impl(g, x, dx, R, C, w, b, stats, 0, dw, db);
    }
}
