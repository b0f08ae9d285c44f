# Build policy as INTERFACE targets, linked PRIVATE by every kcron target (no global flags).

add_library(kcron_warnings INTERFACE)
target_compile_options(kcron_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wconversion -Wsign-conversion -Wpedantic -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough
  $<$<BOOL:${KCRON_WERROR}>:-Werror>)

add_library(kcron_options INTERFACE)
if(KCRON_SANITIZE)
  target_compile_options(kcron_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=undefined)
  target_link_options(kcron_options INTERFACE -fsanitize=address,undefined)
endif()

# Generated and third-party code compiles with the options but not the warnings.
function(kcron_target target)
  target_link_libraries(${target} PRIVATE kcron_warnings kcron_options)
endfunction()
