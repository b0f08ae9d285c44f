# cmake -DINPUT=<file> -DOUTPUT=<file.cpp> -DHEADER=<its declaration> -DNAMESPACE=<ns> -DFUNCTION=<name> -P embed_text.cmake
# Writes a C++ source defining `std::string_view <NAMESPACE>::<FUNCTION>()` that returns the
# input file's text, as a raw string literal (built in: nothing is read at run time). Fails if the
# text holds the literal's closing delimiter.
file(READ "${INPUT}" text)
set(delimiter "kcron_embed")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains )${delimiter}\", which would end the raw string literal")
endif()
file(WRITE "${OUTPUT}.tmp"
     "// Generated from ${INPUT} by cmake/embed_text.cmake: do not edit.\n"
     "#include \"${HEADER}\"\n\n#include <string_view>\n\n"
     "namespace ${NAMESPACE} {\n\n"
     "std::string_view ${FUNCTION}() {\n"
     "  static constexpr std::string_view kText = R\"${delimiter}(${text})${delimiter}\";\n"
     "  return kText;\n"
     "}\n\n"
     "}  // namespace ${NAMESPACE}\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
