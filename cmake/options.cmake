# Build policy as INTERFACE targets, linked PRIVATE by every kcron target (no global flags).

add_library(kcron_warnings INTERFACE)
target_compile_options(kcron_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wconversion -Wsign-conversion -Wpedantic -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough
  $<$<BOOL:${KCRON_WERROR}>:-Werror>)

# KCRON_SANITIZE: address (ASan + UBSan, also spelled ON), thread (TSan), or empty. Every kcron
# target and the generated protobuf code are instrumented; Debian's libraries are not.
add_library(kcron_options INTERFACE)
string(TOLOWER "${KCRON_SANITIZE}" kcron_sanitize)
if(kcron_sanitize STREQUAL "thread")
  # Protobuf's headers add members to MapFieldBase when __SANITIZE_THREAD__ is defined; Debian's
  # libprotobuf is built without them, so kcron hides the macro to keep one layout (a message with a
  # map crossing into the library crashed). _GLIBCXX_TSAN keeps libstdc++'s shared_ptr TSan-aware.
  target_compile_options(kcron_options INTERFACE -fsanitize=thread -fno-omit-frame-pointer -U__SANITIZE_THREAD__
                                                 -D_GLIBCXX_TSAN=1)
  target_link_options(kcron_options INTERFACE -fsanitize=thread)
elseif(kcron_sanitize MATCHES "^(address|on|yes|true|1)$")
  target_compile_options(kcron_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=undefined)
  target_link_options(kcron_options INTERFACE -fsanitize=address,undefined)
elseif(NOT kcron_sanitize MATCHES "^(|off|no|false|0)$")
  message(FATAL_ERROR "KCRON_SANITIZE is 'address', 'thread' or empty, not '${KCRON_SANITIZE}'")
endif()

# TSan: librdkafka's C11 threads started through pthread_create, linked into every executable
# (see the file for why).
if(kcron_sanitize STREQUAL "thread")
  add_library(kcron_tsan_c11_threads OBJECT ${CMAKE_CURRENT_LIST_DIR}/tsan_c11_threads.cpp)
  target_link_libraries(kcron_tsan_c11_threads PRIVATE kcron_warnings kcron_options)
endif()

# Generated and third-party code compiles with the options but not the warnings.
function(kcron_target target)
  target_link_libraries(${target} PRIVATE kcron_warnings kcron_options)
  get_target_property(type ${target} TYPE)
  if(TARGET kcron_tsan_c11_threads AND type STREQUAL "EXECUTABLE")
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:kcron_tsan_c11_threads>)
  endif()
endfunction()
