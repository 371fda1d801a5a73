#include "engine/scheduler.h"

#include <algorithm>
#include <string>
#include <unordered_set>

namespace gannet::engine {

Result<Scheduler> Scheduler::Create(const SchedulerOptions& options) {
  if (options.max_num_batched_tokens <= 0) {
    return Status::InvalidArgument("max_num_batched_tokens must be positive, got " +
                                   std::to_string(options.max_num_batched_tokens));
  }
  if (options.max_num_seqs <= 0) {
    return Status::InvalidArgument("max_num_seqs must be positive, got " +
                                   std::to_string(options.max_num_seqs));
  }
  Result<BlockPool> pool =
      BlockPool::Create({.num_blocks = options.num_blocks, .block_size = options.block_size});
  if (!pool.ok()) return pool.status();
  return Scheduler(options, KvCacheManager(std::move(pool).value()));
}

bool Scheduler::Before(const Sequence* a, const Sequence* b) {
  if (a->arrival != b->arrival) return a->arrival < b->arrival;
  return a->sample_index < b->sample_index;
}

int32_t Scheduler::SeqsReserved() const {
  int32_t n = 0;
  for (const Sequence* s : running_) n += 1 + s->pending_forks;
  return n;
}

void Scheduler::InsertRunning(Sequence* s) {
  running_.insert(std::upper_bound(running_.begin(), running_.end(), s, Before), s);
}

void Scheduler::RemoveRunning(Sequence* s) {
  running_.erase(std::find(running_.begin(), running_.end(), s));
}

Scheduler::Sequence* Scheduler::NewSequence(RequestState& r, int32_t sample_index) {
  auto seq = std::make_unique<Sequence>();
  seq->id = next_seq_id_++;
  seq->request_id = r.spec.id;
  seq->arrival = r.arrival;
  seq->sample_index = sample_index;
  seq->num_prompt = static_cast<int32_t>(r.spec.prompt.size());
  Sequence* s = seq.get();
  seqs_.emplace(s->id, std::move(seq));
  r.live.push_back(s->id);
  return s;
}

Status Scheduler::AddRequest(SchedulerRequest request) {
  const std::string who = "request " + std::to_string(request.id);
  if (requests_.count(request.id) != 0) return Status::InvalidArgument(who + " is already queued");
  if (request.prompt.empty()) return Status::InvalidArgument(who + ": empty prompt");
  if (request.max_tokens < 1) {
    return Status::InvalidArgument(who + ": max_tokens must be at least 1, got " +
                                   std::to_string(request.max_tokens));
  }
  if (request.n < 1 || request.n > options_.max_num_seqs) {
    return Status::InvalidArgument(who + ": n must be in [1, " +
                                   std::to_string(options_.max_num_seqs) + "], got " +
                                   std::to_string(request.n));
  }
  const RequestId id = request.id;
  RequestState& r = requests_[id];
  r.arrival = next_arrival_++;
  r.samples.assign(request.n, SampleOutput{});
  r.spec = std::move(request);
  // The K/V of the last generated token is never computed: a sample needs prompt + max_tokens - 1
  // slots. One that cannot fit even with the pool to itself would never finish.
  const int64_t slots = static_cast<int64_t>(r.spec.prompt.size()) + r.spec.max_tokens - 1;
  const int64_t bs = kv_.block_size();
  if ((slots + bs - 1) / bs > kv_.pool().num_blocks()) {
    for (SampleOutput& o : r.samples) o = {.reason = FinishReason::kError, .finished = true};
    finished_.push_back(
        {.id = id,
         .status = Status::ResourceExhausted("the request needs more KV cache than the pool holds"),
         .samples = std::move(r.samples)});
    requests_.erase(id);
    return Status::Ok();
  }
  Sequence* s = NewSequence(r, 0);
  s->tokens = r.spec.prompt;
  s->pending_forks = r.spec.n - 1;
  waiting_.push_back(s);
  return Status::Ok();
}

ScheduledSeq Scheduler::MakeEntry(const Sequence& s, int32_t n) const {
  ScheduledSeq e;
  e.seq_id = s.id;
  e.request_id = s.request_id;
  e.sample_index = s.sample_index;
  e.start = s.num_computed;
  e.tokens.assign(s.tokens.begin() + s.num_computed, s.tokens.begin() + s.num_computed + n);
  const std::span<const BlockId> table = kv_.BlockTable(s.id);
  e.block_table.assign(table.begin(), table.end());
  e.needs_logits = s.num_computed + n == static_cast<int32_t>(s.tokens.size());
  e.num_samples = e.needs_logits ? 1 + s.pending_forks : 0;
  return e;
}

void Scheduler::Preempt(Sequence* s, SchedulerOutput* out) {
  // Recompute rather than swap: the blocks go back to the pool (its full blocks stay in the prefix
  // cache, so the recompute is often mostly hits) and the sequence restarts from position 0 with
  // its output so far as part of its prompt.
  kv_.Free(s->id);
  s->num_computed = 0;
  s->draft = {};
  s->state = SeqState::kPreempted;
  RemoveRunning(s);
  waiting_.push_front(s);
  ++num_preemptions_;
  out->preempted.push_back(s->id);
}

SchedulerOutput Scheduler::Schedule(const std::function<int32_t(int32_t)>& prefill_limit) {
  GANNET_CHECK(!in_flight_.has_value());
  SchedulerOutput out;
  out.step = ++step_;
  int32_t budget = options_.max_num_batched_tokens;
  int32_t held_back = 0;  // budget kept from prompt chunks because this step also decodes

  // Running sequences: decodes before prefill chunks, each oldest first.
  ScheduleRunning(/*decodes=*/true, &budget, &out);
  const int32_t limit =
      out.seqs.empty() ? budget : prefill_limit(static_cast<int32_t>(out.seqs.size()));
  GANNET_CHECK(limit >= 0);
  if (!out.seqs.empty() && budget > limit) {
    held_back = budget - limit;
    budget = limit;
  }
  ScheduleRunning(/*decodes=*/false, &budget, &out);
  // Waiting sequences, FCFS. A step that preempted is short of memory: admitting would only
  // preempt again next step.
  if (out.preempted.empty()) AdmitWaiting(&budget, &out);
  // Drafts are optional work: they take what the step's prompt chunks left of the budget.
  int32_t spare = budget + held_back;
  AddDrafts(&spare, &out);

  out.copies = kv_.TakeCopies();
  out.num_tokens = options_.max_num_batched_tokens - spare;
  num_scheduled_tokens_ += out.num_tokens;
  if (!out.seqs.empty()) {
    std::vector<InFlight> fl;
    fl.reserve(out.seqs.size());
    for (const ScheduledSeq& e : out.seqs) {
      fl.push_back({.seq_id = e.seq_id,
                    .n = static_cast<int32_t>(e.tokens.size()),
                    .num_samples = e.num_samples,
                    .needs_logits = e.needs_logits,
                    .speculative = e.speculative()});
    }
    in_flight_ = std::move(fl);
  }
  return out;
}

void Scheduler::ScheduleRunning(bool decodes, int32_t* budget, SchedulerOutput* out) {
  size_t i = 0;
  while (i < running_.size() && *budget > 0) {
    Sequence* s = running_[i];
    const int32_t gap = static_cast<int32_t>(s->tokens.size()) - s->num_computed;
    GANNET_CHECK(gap >= 1);
    if (s->scheduled_step == step_ || (gap == 1) != decodes) {
      ++i;
      continue;
    }
    const int32_t n = std::min(gap, *budget);
    if (!AllocateOrPreempt(s, n, out))
      continue;  // s was preempted: running_[i] is now the next one
    s->scheduled_step = step_;
    out->seqs.push_back(MakeEntry(*s, n));
    *budget -= n;
    ++i;
  }
}

int32_t Scheduler::DraftSize(const Sequence& s, int32_t max_nodes) const {
  if (s.draft.empty() || s.pending_forks > 0) return 0;
  // Every accepted token but the last leaves K/V: 1 + m slots never exceed the prompt + max_tokens
  // - 1 that AddRequest checked against the pool (and the engine against the context).
  const int32_t remaining = requests_.at(s.request_id).spec.max_tokens - s.num_output();
  const int32_t m = std::min(
      {static_cast<int32_t>(s.draft.tokens.size()), max_nodes, kMaxDraftTokens, remaining - 1});
  return std::max(m, 0);
}

void Scheduler::AddDrafts(int32_t* budget, SchedulerOutput* out) {
  // A draft never causes a preemption: it gets slots only while the pool keeps a block free for
  // every running sequence.
  const int32_t bs = kv_.block_size();
  for (ScheduledSeq& e : out->seqs) {
    if (*budget <= 0) break;
    Sequence* s = seqs_.at(e.seq_id).get();
    if (!s->draft.empty() && e.needs_logits && e.tokens.size() == 1) {
      const int32_t m = DraftSize(*s, *budget);
      const int32_t reserve = static_cast<int32_t>(running_.size()) + (m + bs - 1) / bs + 1;
      if (m > 0 && kv_.pool().num_free() >= reserve && kv_.AllocateSlots(s->id, m)) {
        AddDraft(*s, m, &e);
        const std::span<const BlockId> table = kv_.BlockTable(s->id);
        e.block_table.assign(table.begin(), table.end());
        *budget -= m;
      }
    }
    s->draft = {};
  }
}

void Scheduler::AddDraft(const Sequence& s, int32_t m, ScheduledSeq* e) const {
  e->tokens.insert(e->tokens.end(), s.draft.tokens.begin(), s.draft.tokens.begin() + m);
  e->tree_parents.reserve(static_cast<size_t>(m) + 1);
  e->tree_parents.push_back(-1);
  for (int32_t i = 0; i < m; ++i) e->tree_parents.push_back(s.draft.parents[i] + 1);
}

bool Scheduler::AllocateOrPreempt(Sequence* s, int32_t n, SchedulerOutput* out) {
  while (!kv_.AllocateSlots(s->id, n)) {
    // The newest running sequence not yet in this step. The scan starts from the back and s
    // itself qualifies, so the victim is s or lies after it; sequences already placed in `out`
    // are never chosen, so no entry is invalidated.
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
      if ((*it)->scheduled_step != step_) {
        victim = *it;
        break;
      }
    }
    GANNET_CHECK(victim != nullptr);
    Preempt(victim, out);
    if (victim == s) return false;
  }
  return true;
}

void Scheduler::AdmitWaiting(int32_t* budget, SchedulerOutput* out) {
  while (!waiting_.empty() && *budget > 0) {
    Sequence* s = waiting_.front();
    if (SeqsReserved() + 1 + s->pending_forks > options_.max_num_seqs) break;
    const PrefixMatch match =
        options_.enable_prefix_caching ? kv_.MatchPrefix(s->tokens) : PrefixMatch{};
    const int32_t n = std::min(static_cast<int32_t>(s->tokens.size()) - match.num_tokens, *budget);
    if (!kv_.AllocateSlots(s->id, n, &match)) break;  // strict FCFS: nobody overtakes the front
    waiting_.pop_front();
    s->state = SeqState::kRunning;
    s->num_computed = match.num_tokens;
    InsertRunning(s);
    prefix_query_tokens_ += static_cast<int64_t>(s->tokens.size());
    prefix_hit_tokens_ += match.num_tokens;
    s->scheduled_step = step_;
    out->seqs.push_back(MakeEntry(*s, n));
    *budget -= n;
  }
}

Status Scheduler::Update(const StepResult& result) {
  if (!in_flight_.has_value()) return Status::InvalidArgument("update: no step is in flight");
  if (result.step != step_) {
    return Status::InvalidArgument("update: result of step " + std::to_string(result.step) +
                                   " but step " + std::to_string(step_) + " is in flight");
  }
  // Validate everything before changing anything.
  std::unordered_map<SeqId, const SeqStepResult*> by_seq;
  for (const SeqStepResult& r : result.seqs) {
    if (!by_seq.emplace(r.seq_id, &r).second) {
      return Status::InvalidArgument("update: two results for sequence " +
                                     std::to_string(r.seq_id));
    }
  }
  size_t matched = 0;
  for (const InFlight& f : *in_flight_) {
    const auto it = by_seq.find(f.seq_id);
    if (it == by_seq.end()) {
      if (f.needs_logits && seqs_.count(f.seq_id) != 0) {
        return Status::InvalidArgument("update: no sampled token for sequence " +
                                       std::to_string(f.seq_id));
      }
      continue;
    }
    ++matched;
    GANNET_RETURN_IF_ERROR(CheckResult(f, *it->second));
  }
  if (matched != by_seq.size())
    return Status::InvalidArgument("update: result for a sequence not in this step");

  std::vector<InFlight> flights = std::move(*in_flight_);
  in_flight_.reset();
  for (const InFlight& f : flights) {
    const auto sit = seqs_.find(f.seq_id);
    if (sit == seqs_.end()) continue;  // cancelled since Schedule()
    Sequence* s = sit->second.get();
    if (f.speculative) {
      const SeqStepResult& r = *by_seq.at(f.seq_id);
      ++num_spec_steps_;
      num_draft_tokens_ += f.n - 1;
      num_accepted_tokens_ += static_cast<int64_t>(r.samples.size()) - 1;
      if (ApplySpeculative(s, r.samples)) s->draft = r.draft;
      continue;
    }
    s->num_computed += f.n;
    kv_.CommitTokens(s->id, s->tokens, s->num_computed);
    if (!f.needs_logits) continue;
    const std::vector<SampledToken>& samples = by_seq.at(f.seq_id)->samples;
    if (!by_seq.at(f.seq_id)->draft.empty() && s->pending_forks == 0)
      s->draft = by_seq.at(f.seq_id)->draft;
    if (s->pending_forks > 0) {
      // Fork before the parent appends (and maybe finishes): the children share its blocks,
      // including the partial last one, which the first writer copies.
      RequestState& r = requests_.at(s->request_id);
      std::vector<Sequence*> children;
      for (int32_t k = 1; k < static_cast<int32_t>(samples.size()); ++k) {
        Sequence* c = NewSequence(r, s->sample_index + k);
        c->tokens = s->tokens;
        c->num_prompt = s->num_prompt;
        c->num_computed = s->num_computed;
        c->state = SeqState::kRunning;
        c->scheduled_step = s->scheduled_step;
        const Status st = kv_.Fork(s->id, c->id);
        GANNET_CHECK(st.ok());
        InsertRunning(c);
        children.push_back(c);
      }
      s->pending_forks = 0;
      for (size_t k = 0; k < children.size(); ++k) AppendSample(children[k], samples[k + 1]);
    }
    AppendSample(s, samples[0]);
  }
  return Status::Ok();
}

Status Scheduler::CheckResult(const InFlight& f, const SeqStepResult& r) const {
  const std::string seq = "update: sequence " + std::to_string(f.seq_id);
  if (!f.needs_logits) return Status::InvalidArgument(seq + " produced no logits this step");
  const size_t n = r.samples.size();
  if (f.speculative ? (n < 1 || n > static_cast<size_t>(f.n))
                    : n != static_cast<size_t>(f.num_samples)) {
    return Status::InvalidArgument(
        seq + " expects " +
        (f.speculative ? "1 to " + std::to_string(f.n) : std::to_string(f.num_samples)) +
        " samples, got " + std::to_string(n));
  }
  for (size_t i = 0; i < n; ++i) {
    const SampledToken& t = r.samples[i];
    if (t.token < 0)
      return Status::InvalidArgument("update: negative token id " + std::to_string(t.token));
    if (t.discard && !t.stop)
      return Status::InvalidArgument("update: a discarded token must stop its sample");
    if (f.speculative && t.stop && i + 1 != n)
      return Status::InvalidArgument(seq + ": an accepted token after a stop");
  }
  const Draft& d = r.draft;
  if (d.tokens.size() != d.parents.size() || d.tokens.size() > static_cast<size_t>(kMaxDraftTokens))
    return Status::InvalidArgument(seq + ": malformed draft");
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    if (d.tokens[i] < 0 || d.parents[i] < -1 || d.parents[i] >= static_cast<int32_t>(i))
      return Status::InvalidArgument(seq + ": malformed draft");
  }
  return Status::Ok();
}

bool Scheduler::ApplySpeculative(Sequence* s, const std::vector<SampledToken>& samples) {
  // The newest token and the accepted draft tokens (all samples but the last) have their K/V in
  // slots [base, base + samples.size()); the rest of the tree's slots go back.
  const int32_t base = s->num_computed;
  const SeqId id = s->id;
  for (const SampledToken& t : samples) {
    if (!AppendSample(s, t)) return false;
  }
  s->num_computed = base + static_cast<int32_t>(samples.size());
  kv_.TrimSlots(id, s->num_computed);
  kv_.CommitTokens(id, s->tokens, s->num_computed);
  return true;
}

bool Scheduler::AppendSample(Sequence* s, SampledToken t) {
  const RequestState& r = requests_.at(s->request_id);
  if (t.stop && t.discard) {
    FinishSeq(s, FinishReason::kStop);
    return false;
  }
  s->tokens.push_back(t.token);
  if (t.stop) {
    FinishSeq(s, FinishReason::kStop);
    return false;
  }
  if (s->num_output() >= r.spec.max_tokens) {
    FinishSeq(s, FinishReason::kLength);
    return false;
  }
  return true;
}

void Scheduler::FinishSeq(Sequence* s, FinishReason reason) {
  kv_.Free(s->id);
  if (s->state == SeqState::kRunning) {
    RemoveRunning(s);
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), s));
  }
  const RequestId rid = s->request_id;
  RequestState& r = requests_.at(rid);
  r.samples[s->sample_index] = {
      .tokens = std::vector<int32_t>(s->tokens.begin() + s->num_prompt, s->tokens.end()),
      .reason = reason,
      .finished = true};
  r.live.erase(std::find(r.live.begin(), r.live.end(), s->id));
  seqs_.erase(s->id);  // `s` is gone from here on
  if (!r.live.empty()) return;
  // Samples never forked (the request was cancelled before its prompt ended) end with it.
  for (SampleOutput& o : r.samples) {
    if (!o.finished) o = {.reason = reason, .finished = true};
  }
  finished_.push_back({.id = rid, .samples = std::move(r.samples)});
  requests_.erase(rid);
}

Status Scheduler::Cancel(RequestId id) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) {
    return Status::NotFound("cancel: request " + std::to_string(id) + " is unknown or finished");
  }
  const std::vector<SeqId> live = it->second.live;
  for (const SeqId sid : live) FinishSeq(seqs_.at(sid).get(), FinishReason::kCancelled);
  return Status::Ok();
}

std::vector<FinishedRequest> Scheduler::TakeFinished() {
  std::vector<FinishedRequest> out;
  out.swap(finished_);
  return out;
}

SchedulerStats Scheduler::stats() const {
  const BlockPool& p = kv_.pool();
  return {.num_running = static_cast<int32_t>(running_.size()),
          .num_waiting = static_cast<int32_t>(waiting_.size()),
          .blocks_used = p.num_used(),
          .blocks_total = p.num_blocks(),
          .blocks_cached = p.num_cached(),
          .prefix_query_tokens = prefix_query_tokens_,
          .prefix_hit_tokens = prefix_hit_tokens_,
          .num_preemptions = num_preemptions_,
          .num_steps = static_cast<int64_t>(step_),
          .num_scheduled_tokens = num_scheduled_tokens_,
          .num_draft_tokens = num_draft_tokens_,
          .num_accepted_tokens = num_accepted_tokens_,
          .num_spec_steps = num_spec_steps_};
}

SeqState Scheduler::state(SeqId id) const {
  const auto it = seqs_.find(id);
  return it == seqs_.end() ? SeqState::kFinished : it->second->state;
}

std::vector<SeqSnapshot> Scheduler::Sequences(RequestId id) const {
  std::vector<SeqSnapshot> out;
  const auto it = requests_.find(id);
  if (it == requests_.end()) return out;
  for (const SeqId sid : it->second.live) {
    const Sequence& s = *seqs_.at(sid);
    out.push_back(
        {.id = s.id,
         .request_id = s.request_id,
         .state = s.state,
         .num_prompt = s.num_prompt,
         .num_computed = s.num_computed,
         .output = std::vector<int32_t>(s.tokens.begin() + s.num_prompt, s.tokens.end())});
  }
  return out;
}

Status Scheduler::CheckInvariants() const {
  GANNET_RETURN_IF_ERROR(kv_.CheckInvariants());
  auto fail = [](const std::string& m) { return Status::Internal("scheduler: " + m); };
  std::unordered_map<SeqId, int32_t> in_flight_n;
  if (in_flight_) {
    for (const InFlight& f : *in_flight_) in_flight_n[f.seq_id] = f.n;
  }
  std::unordered_set<const Sequence*> seen;
  for (size_t i = 0; i < running_.size(); ++i) {
    const Sequence* s = running_[i];
    if (!seen.insert(s).second) return fail("sequence listed twice");
    if (i > 0 && !Before(running_[i - 1], s)) return fail("running list out of priority order");
    if (s->state != SeqState::kRunning) return fail("non-running sequence in the running list");
    if (!kv_.Contains(s->id))
      return fail("running sequence " + std::to_string(s->id) + " has no KV");
    const auto f = in_flight_n.find(s->id);
    const int32_t want = s->num_computed + (f == in_flight_n.end() ? 0 : f->second);
    if (kv_.NumSlots(s->id) != want) {
      return fail("sequence " + std::to_string(s->id) + " holds " +
                  std::to_string(kv_.NumSlots(s->id)) + " slots, expected " + std::to_string(want));
    }
    if (s->num_computed >= static_cast<int32_t>(s->tokens.size())) {
      return fail("running sequence with nothing left to compute");
    }
  }
  for (const Sequence* s : waiting_) {
    if (!seen.insert(s).second) return fail("sequence listed twice");
    if (s->state != SeqState::kWaiting && s->state != SeqState::kPreempted)
      return fail("bad waiting state");
    if (kv_.Contains(s->id) || s->num_computed != 0) return fail("waiting sequence holds KV");
  }
  if (seen.size() != seqs_.size()) return fail("sequence neither running nor waiting");
  if (kv_.num_seqs() != static_cast<int32_t>(running_.size()))
    return fail("KV held by a sequence not running");
  if (SeqsReserved() > options_.max_num_seqs)
    return fail("more sequences running than max_num_seqs");
  size_t live = 0;
  for (const auto& [rid, r] : requests_) {
    live += r.live.size();
    for (const SeqId sid : r.live) {
      const auto it = seqs_.find(sid);
      if (it == seqs_.end() || it->second->request_id != rid)
        return fail("request lists a missing sequence");
    }
  }
  if (live != seqs_.size()) return fail("sequence without a request");
  return Status::Ok();
}

}  // namespace gannet::engine
