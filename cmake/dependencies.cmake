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

# SentencePiece: the prompt tokenizer; its trainer library also trains the `tiny` model's
# tokenizer at build time.
find_package(PkgConfig REQUIRED)
pkg_check_modules(DITSERVE_SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

# FFmpeg's libraries: MP4 (H.264) and PNG output. AUTO uses them when found, ON requires
# them, OFF never uses them; without them `generate` writes .y4m only (the lent GPU
# machines have no FFmpeg and no apt).
set(DITSERVE_FFMPEG AUTO CACHE STRING "MP4/PNG output through FFmpeg: AUTO, ON or OFF")
set_property(CACHE DITSERVE_FFMPEG PROPERTY STRINGS AUTO ON OFF)
set(DITSERVE_WITH_FFMPEG OFF)
if(NOT DITSERVE_FFMPEG STREQUAL "OFF")
  set(ffmpeg_required "")
  if(DITSERVE_FFMPEG STREQUAL "ON")
    set(ffmpeg_required REQUIRED)
  endif()
  pkg_check_modules(DITSERVE_AV ${ffmpeg_required} IMPORTED_TARGET libavcodec libavformat
                    libavutil libswscale)
  if(DITSERVE_AV_FOUND)
    set(DITSERVE_WITH_FFMPEG ON)
  endif()
endif()
message(STATUS "ditserve: FFmpeg (MP4/PNG output) ${DITSERVE_WITH_FFMPEG}")

if(DITSERVE_TESTS)
  find_package(GTest REQUIRED)
endif()
