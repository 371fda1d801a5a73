// Self-speculation (`--spec self`): drafts from the target model itself, with no second file.
//
// On a CPU a decode step of a small model mostly streams weights, and for a large vocabulary the
// output matrix is most of them (Gemma 3 270M: 262144 x 640 of Q8_0, 178 of 247 MB). The draft
// runs the target's own layers (optionally only the first n_layers: early exit, as LayerSkip and
// Apparate) but an output head restricted to the N tokens most likely to be sampled
// (ModelRunner::LoadRestricted), so a draft step streams the layers and N rows. With every layer
// run, its top token is the target's argmax whenever that argmax is among the N tokens, which
// for ordinary text is most of the time. It reuses ModelDrafter (draft_model.h) for its K/V,
// catch-up and tree layout: the drafter maps the head's columns back to token ids.
//
// Which tokens: SelfDraftTokens ranks the vocabulary by how often a token is expected, from what
// the file gives: SentencePiece scores (merge priority, i.e. frequency: higher first), with the
// single characters ranked apart (they score below every merge but are the commonest pieces; a
// 32nd of the head goes to them); for byte-level BPE vocabularies (no scores) lower ids were
// merged earlier. Tokens that can never be sampled (control tokens that do not end generation,
// unused, unknown) are left out; end-of-generation tokens are always in.
// Thread-safety: functions only; see ModelRunner for the runner's.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "engine/model_runner.h"
#include "tokenizer/tokenizer.h"

namespace gannet::engine {

struct SelfDraftOptions {
  // Tokens of the restricted head (all sampleable tokens when the vocabulary has fewer). Gemma 3
  // 270M: 32768 rows of Q8_0 are 22 MB against the layers' 68 MB and the full head's 178 MB.
  int32_t n_tokens = 32768;
  int64_t n_layers = 0;  // layers the draft runs; 0: all
};

// The n most frequent sampleable token ids of `tok` (ids < n_rows, the output matrix's rows),
// end-of-generation ids included, sorted by id.
std::vector<int32_t> SelfDraftTokens(const Tokenizer& tok, int64_t n_rows, int32_t n);

// The draft runner for `target` (ModelRunner::LoadRestricted over SelfDraftTokens).
// REQUIRES: as LoadRestricted (target outlives it; one driving thread).
Result<std::unique_ptr<ModelRunner>> LoadSelfDraft(ModelRunner& target,
                                                   const SelfDraftOptions& options);

}  // namespace gannet::engine
