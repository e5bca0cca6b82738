# Third-party libraries, all from Debian's packages (tools/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 CONFIG QUIET)
if(NOT CLI11_FOUND)
  # Debian's libcli11-dev 2.1 ships only the headers.
  find_path(DITSERVE_CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${DITSERVE_CLI11_INCLUDE})
endif()

# OpenBLAS: the CPU backend's GEMM. Debian's cblas.h lives under include/<variant>.
# DITSERVE_BLAS_LIBRARY may name the library directly (e.g. unpacked packages on a GPU
# machine without apt).
set(DITSERVE_BLAS_LIBRARY "" CACHE FILEPATH "OpenBLAS library; searched for when empty")
if(NOT DITSERVE_BLAS_LIBRARY)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS REQUIRED)
  set(DITSERVE_BLAS_LIBRARY ${BLAS_LIBRARIES})
endif()
find_path(DITSERVE_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas openblas-pthread REQUIRED)
add_library(ditserve_blas INTERFACE)
target_link_libraries(ditserve_blas INTERFACE ${DITSERVE_BLAS_LIBRARY})
target_include_directories(ditserve_blas INTERFACE ${DITSERVE_CBLAS_INCLUDE})

if(DITSERVE_TESTS)
  find_package(GTest REQUIRED)
endif()
