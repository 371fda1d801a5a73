// Internal: the web page's static files as the build embeds them (cmake/embed_files.cmake turns
// every file of src/server/webui/ into a byte array in a generated source). Read by webui.cc only.
//
// The table is constant data, initialised before main: safe to read from any thread.
#pragma once

#include <cstddef>

namespace gannet::server::internal {

struct EmbeddedFile {
  const char* name;           // file name in src/server/webui/, e.g. "app.js"
  const unsigned char* data;  // the file's bytes (followed by one NUL, not counted in size)
  size_t size;
  const char* hash;  // leading hex digits of the file's SHA-256: its ETag
};

extern const EmbeddedFile kWebUiFiles[];
extern const size_t kWebUiFilesCount;

}  // namespace gannet::server::internal
