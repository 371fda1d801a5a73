// Tokenizer: text <-> token ids, producing exactly the ids llama.cpp produces (llama_tokenize) for
// SentencePiece-style (`llama`) and byte-level BPE (`gpt2`) vocabularies in GGUF files.
//
//   auto tok = Tokenizer::FromGguf(file);            // or FromVocab(spec) for an in-memory vocab
//   std::vector<int32_t> ids = (*tok)->Encode("Hello", /*add_special=*/true,
//   /*parse_special=*/false); std::string text = (*tok)->Decode(ids, /*render_special=*/false);
//
// Thread-safety: a Tokenizer is immutable after construction; all const methods may be called
// concurrently. IncrementalDecoder is a small per-stream object, not shared between threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/special_partition.h"
#include "tokenizer/vocab_index.h"

namespace gannet {

class GgufFile;

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Token attributes (a bit set) after llama.cpp's load-time adjustments: tokens recognised by text
// as end-of-turn / FIM markers become control tokens, control tokens named "unused..." also
// unused, and Phi-3 special tokens strip the spaces to their right when parsed.
struct TokenAttr {
  static constexpr uint32_t kUnknown = 1u << 0;
  static constexpr uint32_t kUnused = 1u << 1;
  static constexpr uint32_t kNormal = 1u << 2;
  static constexpr uint32_t kControl = 1u << 3;
  static constexpr uint32_t kUserDefined = 1u << 4;
  static constexpr uint32_t kByte = 1u << 5;
  static constexpr uint32_t kLstrip = 1u << 7;
  static constexpr uint32_t kRstrip = 1u << 8;
};

enum class VocabModel { kSpm, kBpe };

// A vocabulary as plain data (what FromGguf reads from tokenizer.ggml.*).
struct VocabSpec {
  VocabModel model = VocabModel::kSpm;
  std::string pre = "default";      // tokenizer.ggml.pre; BPE only
  std::vector<std::string> tokens;  // id -> text
  std::vector<float> scores;        // empty: all 0
  std::vector<TokenType> types;     // empty: all kNormal
  std::vector<std::string> merges;  // BPE: "left right", rank = index
  // Special ids. nullopt: llama.cpp's default for the model (SPM bos 1, eos 2, unk 0; BPE bos = eos
  // = 11), disabled when out of range; -1: none. An explicit id out of range is an error.
  std::optional<int32_t> bos, eos, eot, eom, unk, pad;
  std::optional<int32_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
  // nullopt: the model's / pre-tokenizer's default, as llama.cpp.
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::string model_name;  // general.name (llama.cpp keys per-token strip rules on it, e.g. Phi-3)
};

struct DecodeOptions {
  bool render_special = false;  // control / unknown tokens render their text (else nothing)
  // Apply the vocabulary's clean_up_tokenization_spaces rule (" ." -> "." ...) where llama.cpp's
  // llama_detokenize does (BPE vocabularies other than qwen2, smollm, ...). Not streamable.
  bool clean_spaces = false;
};

// The vocabulary of a GGUF file (tokenizer.ggml.*) as data, before any tokenizer is built from it
// (Tokenizer::FromGguf reads it so); errors name the key.
Result<VocabSpec> ReadVocabSpec(const GgufFile& file);

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from a model or vocab-only GGUF file. Unsupported tokenizer model or
  // pre-tokenizer, missing or mistyped keys and out-of-range ids are errors naming the key.
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& file);
  static Result<std::unique_ptr<Tokenizer>> FromVocab(VocabSpec spec);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // llama_tokenize(vocab, text, add_special, parse_special): add_special adds BOS / EOS where the
  // vocabulary asks for them; parse_special turns control and unknown token texts found in `text`
  // into single tokens (user-defined token texts always are). Any bytes are accepted: invalid UTF-8
  // becomes byte tokens (SPM) or is encoded as U+FFFD (BPE), as llama.cpp does.
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes of one token (llama_token_to_piece with lstrip 0): SPM '▁' -> ' ', <0xXX> -> the
  // byte; BPE: GPT-2 byte decoding. Control and unknown tokens give "" unless render_special;
  // user-defined tokens always give their text. An out-of-range id gives "".
  std::string TokenToPiece(int32_t id, bool render_special) const;

  // llama_detokenize(ids, remove_special = false, unparse_special = render_special): the pieces
  // joined, the first token losing one leading space when the vocabulary adds a space prefix.
  std::string Decode(std::span<const int32_t> ids, bool render_special) const;
  std::string Decode(std::span<const int32_t> ids, const DecodeOptions& options) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  VocabModel model() const { return model_; }
  const std::string& pre() const { return pre_; }
  int32_t bos() const { return bos_; }  // -1 when absent
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  bool clean_spaces() const { return clean_spaces_; }

  // eos, eot, eom and the tokens llama.cpp recognises by text (<end_of_turn>, <|eot_id|>,
  // <|im_end|>,
  // <|endoftext|>, ...).
  bool IsEndOfGeneration(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_ids_; }

  std::optional<int32_t> FindToken(std::string_view text) const;
  // REQUIRES for the accessors below: 0 <= id < n_vocab().
  const std::string& token_text(int32_t id) const { return tokens_[id]; }
  float token_score(int32_t id) const { return scores_[id]; }
  TokenType token_type(int32_t id) const { return types_[id]; }
  uint32_t token_attr(int32_t id) const { return attrs_[id]; }
  bool IsControl(int32_t id) const { return (attrs_[id] & TokenAttr::kControl) != 0; }
  bool IsByte(int32_t id) const { return (attrs_[id] & TokenAttr::kByte) != 0; }

 private:
  Tokenizer() = default;
  Status Init(VocabSpec spec);
  void AdjustAttributes(const std::string& model_name);
  using Fragment = SpecialPartitioner::Fragment;
  std::vector<Fragment> PartitionSpecial(std::string_view text, bool parse_special) const;
  std::string PieceFor(int32_t id) const;  // uncached, render_special = true

  VocabModel model_ = VocabModel::kSpm;
  std::string pre_;
  PreTokenizerConfig pre_config_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::vector<uint32_t> attrs_;
  TokenMap token_to_id_;
  BpeRanks ranks_;
  std::array<int32_t, 256> byte_tokens_{};                 // SPM byte fallback ids
  std::vector<int32_t> special_tokens_;                    // partition order: longest text first
  std::unique_ptr<const SpecialPartitioner> partitioner_;  // over special_tokens_
  std::vector<std::string> pieces_;  // TokenToPiece(id, render_special = true)
  std::vector<int32_t> eog_ids_;     // sorted
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1, pad_ = -1;
  int32_t fim_pre_ = -1, fim_suf_ = -1, fim_mid_ = -1, fim_pad_ = -1, fim_rep_ = -1, fim_sep_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false, clean_spaces_ = false;
};

// Turns a stream of ids into text that is always whole UTF-8: bytes of a character split over
// several tokens (byte tokens of an emoji, say) are held until the character is complete. Bytes
// that can never complete are released as U+FFFD at once; Finish() releases a dangling tail as
// U+FFFD. Joined, the outputs equal Decode(ids) wherever Decode's output is valid UTF-8.
class IncrementalDecoder {
 public:
  // `tokenizer` must outlive the decoder. render_special: every control token renders its text;
  // else only those in `render_ids` do (e.g. a model's tool-call markers, which the reader of the
  // text must see), every other control token giving nothing.
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool render_special = false,
                              std::vector<int32_t> render_ids = {});

  // Text completed by this token (possibly empty).
  std::string Feed(int32_t id);
  // Whatever is still held, with incomplete sequences as U+FFFD; resets for a new stream.
  std::string Finish();
  bool has_pending() const { return !pending_.empty(); }

 private:
  std::string TakeComplete(bool final);

  const Tokenizer& tokenizer_;
  bool render_special_;
  std::vector<int32_t> render_ids_;  // sorted
  bool first_ = true;
  std::string pending_;
};

}  // namespace gannet
