// Declarations of the OpenBLAS entry points Apus calls. Apus does not link OpenBLAS at build
// time: it loads libopenblas at run time (see ApusOps/BLAS) so that it can choose the CPU core
// type first. These typedefs describe the functions it looks up.
#ifndef APUS_CBLAS_SHIM_H
#define APUS_CBLAS_SHIM_H

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

typedef void (*apus_cblas_sgemm_fn)(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transA,
                                    enum CBLAS_TRANSPOSE transB, int m, int n, int k, float alpha,
                                    const float *a, int lda, const float *b, int ldb, float beta,
                                    float *c, int ldc);
typedef void (*apus_cblas_sgemv_fn)(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans, int m, int n, float alpha,
                                    const float *a, int lda, const float *x, int incx, float beta, float *y,
                                    int incy);
typedef void (*apus_openblas_set_num_threads_fn)(int threads);
typedef char *(*apus_openblas_get_corename_fn)(void);
typedef char *(*apus_openblas_get_config_fn)(void);
typedef int (*apus_openblas_get_num_threads_fn)(void);

#endif
