# Decides whether the CUDA backend is built and, if so, for which GPU architectures.
# Sets DITSERVE_WITH_CUDA (bool) and defines the imported targets ditserve::cuda_libs.
set(DITSERVE_WITH_CUDA OFF)
if(NOT DITSERVE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(DITSERVE_WITH_CUDA ON)
  elseif(DITSERVE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DITSERVE_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()

if(DITSERVE_WITH_CUDA)
  # sm_90 (H100/H200) is the target; add 80;89 with -DDITSERVE_CUDA_ARCHS="80;89;90".
  set(DITSERVE_CUDA_ARCHS "90" CACHE STRING "CUDA architectures to build for")
  set(CMAKE_CUDA_ARCHITECTURES ${DITSERVE_CUDA_ARCHS})
  enable_language(CUDA)
  # CMake 3.25 does not know nvcc's C++20 flag; pass it directly.
  string(APPEND CMAKE_CUDA_FLAGS " -std=c++20")
  find_package(CUDAToolkit REQUIRED)
  find_library(DITSERVE_CUDNN_LIB cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  find_library(DITSERVE_NCCL_LIB nccl HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  add_library(ditserve_cuda_libs INTERFACE)
  target_link_libraries(ditserve_cuda_libs INTERFACE
    CUDA::cudart CUDA::cublas CUDA::cublasLt ${DITSERVE_CUDNN_LIB} ${DITSERVE_NCCL_LIB})
  add_library(ditserve::cuda_libs ALIAS ditserve_cuda_libs)
  message(STATUS "ditserve: CUDA backend ON (architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "ditserve: CUDA backend OFF")
endif()
