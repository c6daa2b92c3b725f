"""The process Looper runs in: which BLAS mlx uses, threads that own mlx state, `looper doctor`."""
