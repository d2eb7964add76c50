#include <agentlock/findings.hpp>

#include <algorithm>
#include <functional>
#include <iterator>
#include <tuple>

namespace agentlock {

std::string_view to_string(FindingState state) {
    switch (state) {
    case FindingState::appeared:
        return "appeared";
    case FindingState::changed:
        return "changed";
    case FindingState::resolved:
        return "resolved";
    }
    return "appeared";
}

std::string_view process_state_name(ProcessState state) {
    switch (state) {
    case ProcessState::alive:
        return "alive";
    case ProcessState::dead:
        return "dead";
    case ProcessState::zombie:
        return "zombie";
    case ProcessState::unknown:
        return "unknown";
    }
    return "unknown";
}

const std::string& FindingChange::event() const {
    if (state == FindingState::resolved && !finding.resolved_event.empty()) {
        return finding.resolved_event;
    }
    return finding.event;
}

namespace {

std::string_view lock_suffix() {
    static const std::string suffix =
        "/" + std::string(k_runtime_dir) + "/" + std::string(k_lock_name);
    return suffix;
}

std::string_view suffix_of(bool lock) {
    return lock ? lock_suffix() : std::string_view{};
}

} // namespace

FindingTracker::OpenKey FindingTracker::map_key(std::string_view event, std::string_view key) {
    OpenKey k;
    k.event = PathRef(event);
    const std::string_view suffix = lock_suffix();
    if (key.size() > suffix.size() && key.substr(key.size() - suffix.size()) == suffix) {
        k.base = PathRef(key.substr(0, key.size() - suffix.size()));
        k.lock_suffix = true;
    } else {
        k.base = PathRef(key);
    }
    return k;
}

std::string FindingTracker::OpenKey::key() const {
    std::string out(base.view());
    out += suffix_of(lock_suffix);
    return out;
}

bool FindingTracker::KeyLess::operator()(const OpenKey& a, const OpenKey& b) const noexcept {
    if (const auto c = a.event.view().compare(b.event.view()); c != 0) {
        return c < 0;
    }
    return compare_joined(a.base.view(), suffix_of(a.lock_suffix), b.base.view(),
                          suffix_of(b.lock_suffix)) < 0;
}

bool FindingTracker::KeyLess::operator()(const OpenKey& a, const KeyView& b) const noexcept {
    if (const auto c = a.event.view().compare(b.event); c != 0) {
        return c < 0;
    }
    return compare_joined(a.base.view(), suffix_of(a.lock_suffix), b.key, {}) < 0;
}

bool FindingTracker::KeyLess::operator()(const KeyView& a, const OpenKey& b) const noexcept {
    if (const auto c = a.event.compare(b.event.view()); c != 0) {
        return c < 0;
    }
    return compare_joined(a.key, {}, b.base.view(), suffix_of(b.lock_suffix)) < 0;
}

namespace {

std::uint64_t hash_of(std::string_view text) {
    return std::hash<std::string_view>{}(text);
}

// Items (strings or PathRefs) joined with `sep`.
template <typename Item> std::string join(const std::vector<Item>& items, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) {
            out += sep;
        }
        out += std::string_view(items[i]);
    }
    return out;
}

std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> out;
    while (true) {
        const auto nl = text.find('\n');
        out.emplace_back(text.substr(0, nl));
        if (nl == std::string_view::npos) {
            return out;
        }
        text.remove_prefix(nl + 1);
    }
}

} // namespace

FindingTracker::Open FindingTracker::make_open(const Finding& f, std::uint64_t round) {
    Open o;
    o.fingerprint = hash_of(f.fingerprint);
    o.round = round;
    if (f.key_lines_are_paths || (f.paths.size() > 1 && join(f.paths, "\n") == f.key)) {
        o.paths = Paths::key_lines;
    } else if (f.paths.size() == 1 && f.paths.front() == f.key) {
        o.paths = Paths::key;
    } else if (f.paths.empty()) {
        o.paths = Paths::none;
    } else {
        o.paths = Paths::listed;
    }
    if (!f.resolved_event.empty() || o.paths == Paths::listed || !f.resolve_fields.empty()) {
        o.extra = std::make_unique<Extra>();
        o.extra->resolved_event = f.resolved_event;
        if (o.paths == Paths::listed) {
            o.extra->paths = f.paths;
        }
        o.extra->resolve_fields = f.resolve_fields;
    }
    return o;
}

Finding FindingTracker::as_finding(const OpenMap::value_type& entry) {
    Finding f;
    f.event = entry.first.event.str();
    f.key = entry.first.key();
    const Open& o = entry.second;
    switch (o.paths) {
    case Paths::key:
        f.paths = {f.key};
        break;
    case Paths::key_lines:
        f.paths = split_lines(f.key);
        break;
    case Paths::none:
        break;
    case Paths::listed:
        f.paths = o.extra->paths;
        break;
    }
    if (o.extra) {
        f.resolved_event = o.extra->resolved_event;
        f.fields = o.extra->resolve_fields;
        f.resolve_fields = o.extra->resolve_fields;
    }
    return f;
}

bool FindingTracker::frozen(const OpenMap::value_type& entry,
                            const std::vector<std::string>& roots) const {
    if (roots.empty()) {
        return false;
    }
    auto under_frozen = [&roots](std::string_view p) {
        return std::any_of(roots.begin(), roots.end(),
                           [p](const std::string& root) { return path_is_under(p, root); });
    };
    const std::string key_text = entry.first.key();
    const std::string_view key = key_text;
    switch (entry.second.paths) {
    case Paths::key:
        return under_frozen(key);
    case Paths::key_lines: {
        const auto lines = split_lines(key);
        return std::any_of(lines.begin(), lines.end(), under_frozen);
    }
    case Paths::none:
        return false;
    case Paths::listed:
        return std::any_of(entry.second.extra->paths.begin(), entry.second.extra->paths.end(),
                           under_frozen);
    }
    return false;
}

void FindingTracker::begin() {
    ++m_round;
}

std::optional<FindingState> FindingTracker::observe(const Finding& f) {
    auto it = m_open.find(KeyView{f.event, f.key});
    if (it == m_open.end()) {
        m_open.emplace(map_key(f.event, f.key), make_open(f, m_round));
        return FindingState::appeared;
    }
    if (it->second.round == m_round) {
        return std::nullopt; // seen in this round already: the first of two duplicates wins
    }
    const std::uint64_t print = hash_of(f.fingerprint);
    if (it->second.fingerprint != print) {
        it->second = make_open(f, m_round);
        return FindingState::changed;
    }
    it->second.round = m_round;
    if (!f.resolve_fields.empty()) {
        if (!it->second.extra) {
            it->second.extra = std::make_unique<Extra>();
        }
        it->second.extra->resolve_fields = f.resolve_fields; // its other fields as seen now
    }
    return std::nullopt;
}

FindingTracker::OpenMap::iterator
FindingTracker::resolve(OpenMap::iterator it, const std::vector<std::string>& frozen_roots,
                        std::vector<FindingChange>& out) {
    if (it->second.round == m_round || frozen(*it, frozen_roots)) {
        // Still there, or under a root that could not be walked this time (we do not know
        // that it went away): kept as it is.
        return std::next(it);
    }
    out.push_back({FindingState::resolved, as_finding(*it)});
    return m_open.erase(it);
}

std::vector<FindingChange>
FindingTracker::sweep(const std::vector<std::string>& frozen_roots,
                      const std::function<bool(const Finding&)>* in_scope) {
    std::vector<FindingChange> out;
    for (auto it = m_open.begin(); it != m_open.end();) {
        if (in_scope != nullptr && it->second.round != m_round && !(*in_scope)(as_finding(*it))) {
            ++it; // not ours to decide
            continue;
        }
        it = resolve(it, frozen_roots, out);
    }
    return out;
}

std::vector<FindingChange> FindingTracker::observe_all(std::vector<Finding> current) {
    std::stable_sort(current.begin(), current.end(), [](const Finding& a, const Finding& b) {
        return std::tie(a.event, a.key) < std::tie(b.event, b.key);
    });
    std::vector<FindingChange> changes;
    for (auto& f : current) {
        if (auto state = observe(f)) {
            changes.push_back({*state, std::move(f)});
        }
    }
    return changes;
}

std::vector<FindingChange> FindingTracker::update(std::vector<Finding> current,
                                                  const std::vector<std::string>& frozen_roots) {
    begin();
    auto rest = observe_all(std::move(current));
    auto changes = sweep(frozen_roots);
    changes.insert(changes.end(), std::make_move_iterator(rest.begin()),
                   std::make_move_iterator(rest.end()));
    return changes;
}

std::vector<FindingChange>
FindingTracker::update_some(std::vector<Finding> current,
                            const std::function<bool(const Finding&)>& in_scope,
                            const std::vector<std::string>& frozen_roots) {
    begin();
    auto rest = observe_all(std::move(current));
    auto changes = sweep(frozen_roots, &in_scope);
    changes.insert(changes.end(), std::make_move_iterator(rest.begin()),
                   std::make_move_iterator(rest.end()));
    return changes;
}

std::vector<FindingChange>
FindingTracker::update_scope(std::vector<Finding> current, std::string_view event_prefix,
                             std::optional<std::string_view> key,
                             const std::vector<std::string>& frozen_roots) {
    begin();
    auto rest = observe_all(std::move(current));
    std::vector<FindingChange> changes;
    // The open map is ordered by event, then key: the events under the prefix are one range,
    // and within each event one key is one lookup.
    auto it = m_open.lower_bound(KeyView{event_prefix, {}});
    while (it != m_open.end() &&
           it->first.event.view().substr(0, event_prefix.size()) == event_prefix) {
        if (!key) {
            it = resolve(it, frozen_roots, changes);
            continue;
        }
        const std::string event = it->first.event.str();
        auto mine = m_open.find(KeyView{event, *key});
        if (mine != m_open.end()) {
            resolve(mine, frozen_roots, changes);
        }
        // On to the next event: past every key of this one.
        it = m_open.lower_bound(KeyView{event + '\x01', {}});
    }
    changes.insert(changes.end(), std::make_move_iterator(rest.begin()),
                   std::make_move_iterator(rest.end()));
    return changes;
}

namespace {

void add_if_set(FindingFields& fields, std::string key, const std::string& value) {
    if (!value.empty()) {
        fields.emplace_back(std::move(key), value);
    }
}

// The event under which a lock record is a finding, or empty when it is not one.
std::string_view lock_event(const LockRecord& rec) {
    switch (rec.judgement.verdict) {
    case Verdict::live:
        return {};
    case Verdict::orphaned:
        return "lock.orphaned";
    case Verdict::held_by_session:
        return "lock.held_by_session";
    case Verdict::invalid:
        return "lock.invalid";
    case Verdict::foreign:
        return "lock.foreign";
    case Verdict::host_gone:
        return rec.action == LockAction::removed ? std::string_view{} : "lock.host_gone";
    case Verdict::unknown:
        return "lock.unknown";
    case Verdict::stale:
        break;
    }
    switch (rec.action) {
    case LockAction::would_remove:
        return "lock.would_remove";
    case LockAction::kept:
        // A stale lock kept with a reaper detail means the removal failed; without one, the pass
        // did not try (it was cancelled).
        return rec.detail.empty() ? std::string_view{} : std::string_view{"lock.remove_failed"};
    case LockAction::removed:
    case LockAction::skipped_changed:
        return {};
    }
    return {};
}

std::string collision_event(CollisionKind kind) {
    return kind == CollisionKind::duplicate_session ? "collision.duplicate_session"
                                                    : "collision.duplicate_pid";
}

} // namespace

FindingFields lock_record_fields(const LockRecord& rec, const TmuxFacts& tmux, bool with_content) {
    FindingFields fields;
    fields.emplace_back("lock_path", rec.lock_path);
    fields.emplace_back("worker", rec.worker);
    fields.emplace_back("verdict", std::string(to_string(rec.judgement.verdict)));
    fields.emplace_back("reason", rec.judgement.reason);
    fields.emplace_back("action", std::string(to_string(rec.action)));
    if (rec.info) {
        fields.emplace_back("pid", std::to_string(rec.info->pid));
        fields.emplace_back("session_id", rec.info->session_id);
        fields.emplace_back("hostname", rec.info->hostname);
        fields.emplace_back("acquired_at", format_rfc3339(rec.info->acquired_at));
        // A lock judged without probing (foreign, or invalid) has no process evidence.
        if (rec.judgement.verdict != Verdict::foreign &&
            rec.judgement.verdict != Verdict::host_gone) {
            fields.emplace_back("pid_state", std::string(process_state_name(rec.process.state)));
        }
        add_if_set(fields, "pid_detail", rec.process.detail);
    }
    // The server a recorded session was judged against, so that a kept lock's line names it.
    if (rec.info && !rec.info->session_id.empty()) {
        add_if_set(fields, "tmux_server", tmux.server);
    }
    fields.emplace_back("tmux_state", std::string(to_string(tmux.state)));
    add_if_set(fields, "tmux_detail", tmux.detail);
    if (rec.detail != rec.judgement.reason) {
        add_if_set(fields, "detail", rec.detail); // the reaper's words, when they add something
    }
    if (with_content) {
        fields.emplace_back("content", rec.content);
    }
    return fields;
}

std::vector<std::string> unavailable_roots(const PassReport& report) {
    std::vector<std::string> out;
    for (const auto& root : report.roots) {
        if (!root.ok) {
            out.push_back(root.path);
        }
    }
    return out;
}

const std::vector<std::string_view>& lock_finding_events() {
    static const std::vector<std::string_view> events = {
        "lock.held_by_session", "lock.foreign", "lock.invalid",      "lock.orphaned",
        "lock.remove_failed",   "lock.unknown", "lock.would_remove", "lock.host_gone"};
    return events;
}

std::optional<Finding> lock_finding(const LockRecord& rec, const TmuxFacts& tmux) {
    const std::string_view event = lock_event(rec);
    if (event.empty()) {
        return std::nullopt;
    }
    Finding f;
    f.event = std::string(event);
    f.key = rec.lock_path;
    // The content identifies the claim; an invalid lock's reason (a FIFO has no content)
    // tells its problems apart.
    f.fingerprint = rec.content;
    if (rec.judgement.verdict == Verdict::invalid) {
        f.fingerprint += '\n';
        f.fingerprint += rec.judgement.reason;
    }
    f.paths = {rec.lock_path};
    f.fields = lock_record_fields(rec, tmux, event == "lock.would_remove");
    return f;
}

std::string tmux_finding_key(const ServerRef& server) {
    return "tmux " + describe_tmux_server(server);
}

std::vector<Finding> pass_findings(const PassReport& report) {
    std::vector<Finding> out;

    for (const auto& root : report.roots) {
        if (root.ok) {
            continue;
        }
        Finding f;
        f.event = "root.unavailable";
        f.resolved_event = "root.recovered";
        f.key = root.path;
        f.fingerprint = root.error;
        f.fields = {{"root", root.path}, {"error", root.error}};
        f.resolve_fields = {{"root", root.path}};
        out.push_back(std::move(f));
    }

    for (const auto& server : tmux_servers_of(report)) {
        if (server.facts.state != TmuxState::unknown) {
            continue;
        }
        const std::string name = describe_tmux_server(server.server);
        Finding f;
        f.event = "tmux.unreachable";
        f.resolved_event = "tmux.recovered";
        f.key = tmux_finding_key(server.server);
        f.fingerprint = server.facts.detail;
        f.fields = {{"tmux_server", name},
                    {"roots", join(server.roots, ",")},
                    {"tmux_state", std::string(to_string(server.facts.state))},
                    {"tmux_detail", server.facts.detail}};
        f.resolve_fields = {{"tmux_server", name}};
        out.push_back(std::move(f));
    }

    for (const auto& c : report.collisions) {
        if (c.kind != CollisionKind::duplicate_session && c.kind != CollisionKind::duplicate_pid) {
            continue;
        }
        Finding f;
        f.event = collision_event(c.kind);
        f.key = join(c.workers, "\n");
        f.fingerprint = c.message;
        f.key_lines_are_paths = true; // not a copy of every worker: there may be thousands
        FindingFields who;
        who.emplace_back("kind", std::string(to_string(c.kind)));
        who.emplace_back("workers", list_workers(c.workers, ","));
        who.emplace_back("worker_count", std::to_string(c.workers.size()));
        if (c.kind == CollisionKind::duplicate_session) {
            who.emplace_back("session_id", c.session_id);
        } else {
            who.emplace_back("pid", std::to_string(c.pid));
        }
        f.fields = who;
        f.fields.emplace_back("message", c.message);
        f.resolve_fields = std::move(who);
        out.push_back(std::move(f));
    }

    for (const auto& e : report.walk_errors) {
        Finding f;
        f.event = "dir.unreadable";
        f.key = e.path;
        f.fingerprint = e.message;
        f.paths = {e.path};
        f.fields = {{"path", e.path}, {"error", e.message}};
        f.resolve_fields = {{"path", e.path}};
        out.push_back(std::move(f));
    }

    for (const auto& e : report.skipped_runtimes) {
        Finding f;
        f.event = "runtime.symlinked";
        f.key = e.path;
        f.fingerprint = e.message; // names the target: a new target is logged again
        f.paths = {e.path};
        f.fields = {{"path", e.path}, {"reason", e.message}};
        f.resolve_fields = {{"path", e.path}};
        out.push_back(std::move(f));
    }
    return out;
}

std::vector<Finding> findings_of(const PassReport& report) {
    std::vector<Finding> out = pass_findings(report);
    for (const auto& rec : report.locks) {
        if (auto f = lock_finding(rec, tmux_facts_of(report, rec))) {
            out.push_back(std::move(*f));
        }
    }
    return out;
}

} // namespace agentlock
