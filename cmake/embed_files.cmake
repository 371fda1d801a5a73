# Turns every file of a folder into a byte array in one C++ source, so static files (the web
# page's HTML, CSS and JavaScript) ship inside the binary. Run at build time:
#   cmake -DSRC_DIR=<folder> -DOUT=<file.cc> -DHEADER=<include> -DNAMESPACE=<ns> -DARRAY=<name>
#         -P embed_files.cmake
# The source defines `const EmbeddedFile <ARRAY>[]` and `const size_t <ARRAY>Count` in
# <NAMESPACE>, as declared by HEADER; each entry has the file's name, bytes and a content hash
# (the HTTP ETag). Files are listed by name, so the output is the same on every machine.
foreach(var SRC_DIR OUT HEADER NAMESPACE ARRAY)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_files.cmake: -D${var}=... is required")
  endif()
endforeach()

string(REPEAT "[0-9a-f]" 32 line_pattern)
file(GLOB names RELATIVE "${SRC_DIR}" "${SRC_DIR}/*")
list(SORT names)
set(arrays "")
set(entries "")
set(index 0)
foreach(name ${names})
  # Folders, hidden files and editor backups are not part of the page.
  if(IS_DIRECTORY "${SRC_DIR}/${name}" OR name MATCHES "^\\." OR name MATCHES "~$")
    continue()
  endif()
  file(READ "${SRC_DIR}/${name}" hex HEX)
  file(SHA256 "${SRC_DIR}/${name}" hash)
  string(SUBSTRING "${hash}" 0 20 hash)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  # 16 bytes a line, then each byte as 0xNN (CMake's regex has no {n} and few groups).
  string(REGEX REPLACE "(${line_pattern})" "\\1\n" hex "${hex}")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND arrays "// ${name}\nconst unsigned char kBytes${index}[] = {\n${bytes}0x00};\n\n")
  string(APPEND entries "    {\"${name}\", kBytes${index}, ${size}, \"${hash}\"},\n")
  math(EXPR index "${index} + 1")
endforeach()

get_filename_component(folder "${SRC_DIR}" NAME)
set(text "// Generated at build time by cmake/embed_files.cmake from the files of ${folder}/; do not edit.\n")
string(APPEND text "#include \"${HEADER}\"\n\nnamespace ${NAMESPACE} {\nnamespace {\n\n")
string(APPEND text "${arrays}}  // namespace\n\n")
string(APPEND text "const EmbeddedFile ${ARRAY}[] = {\n${entries}};\n")
string(APPEND text "const size_t ${ARRAY}Count = ${index};\n\n}  // namespace ${NAMESPACE}\n")
file(WRITE "${OUT}" "${text}")
