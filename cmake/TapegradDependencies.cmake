# Finds tapegrad's dependencies, all from Debian 12 packages
# (scripts/setup installs them).
include(GNUInstallDirs)

find_package(xtensor 0.24 REQUIRED CONFIG)

# Pin OpenBLAS: a plain BLAS search can land on netlib's reference BLAS,
# 25-30x slower for SGEMM.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)

# zlib: CRC-32 and deflate for .npz archives (numpy.savez_compressed).
find_package(ZLIB REQUIRED)
