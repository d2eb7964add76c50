#include <agentlock/pass.hpp>

#include <algorithm>
#include <chrono>

namespace agentlock {

std::string_view to_string(LockAction action) {
    switch (action) {
    case LockAction::kept:
        return "kept";
    case LockAction::removed:
        return "removed";
    case LockAction::would_remove:
        return "would-remove";
    case LockAction::skipped_changed:
        return "skipped-changed";
    }
    return "kept";
}

namespace {

bool cancelled(const PassOptions& options) {
    return options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed);
}

bool is_local(const LockInfo& info, const HostFacts& host) {
    return info.hostname.empty() || info.hostname == host.hostname;
}

// Judges one lock found by the walk and, when it is stale, hands it to the reaper.
class LockHandler {
public:
    LockHandler(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                const TmuxFacts& tmux_facts, const HostFacts& host, PassReport& report)
        : m_options(options), m_processes(processes), m_tmux(tmux), m_tmux_facts(tmux_facts),
          m_host(host), m_report(report) {}

    void handle(const LockSite& site) {
        LockRecord rec;
        rec.worker = site.worker;
        rec.lock_path = site.lock_path;
        LockRead read = read_lock_at(site.runtime_fd, site.lock_path);
        switch (read.state) {
        case LockRead::State::absent:
            return; // removed between the directory listing and the open
        case LockRead::State::io_error:
            rec.judgement = {Verdict::unknown, read.message};
            m_report.locks.push_back(std::move(rec));
            return;
        case LockRead::State::invalid:
            rec.judgement = {Verdict::invalid, read.message};
            rec.content = std::move(read.bytes);
            m_report.locks.push_back(std::move(rec));
            return;
        case LockRead::State::ok:
            break;
        }
        rec.info = *read.info;
        rec.content = read.bytes;
        rec.judgement = judge(*rec.info, &rec.process, m_tmux_facts);
        if (is_removable(rec.judgement.verdict) && !cancelled(m_options)) {
            reap(site, rec);
        }
        m_report.locks.push_back(std::move(rec));
    }

private:
    Judgement judge(const LockInfo& info, ProcessFacts* evidence, const TmuxFacts& tmux) {
        ProcessFacts process;
        if (is_local(info, m_host)) {
            process = m_processes.probe(info.pid);
        } else {
            process.detail = "not probed: the lock belongs to another host";
        }
        if (evidence != nullptr) {
            *evidence = process;
        }
        return judge_lock(info, process, tmux, m_host);
    }

    void reap(const LockSite& site, LockRecord& rec) {
        // The re-check asks tmux again when a session is recorded: it may have appeared since
        // the pass's query, and a live session's lock must never go.
        auto rejudge = [this](const LockInfo& again) {
            if (again.session_id.empty()) {
                return judge(again, nullptr, m_tmux_facts);
            }
            return judge(again, nullptr, m_tmux.query());
        };
        RemovalResult removal = remove_if_unchanged(site.runtime_fd, site.lock_path, rec.content,
                                                    rejudge, m_options.dry_run);
        rec.detail = removal.detail;
        switch (removal.action) {
        case RemovalAction::removed:
            rec.action = LockAction::removed;
            rec.content = std::move(removal.content);
            ++m_report.stats.removed;
            break;
        case RemovalAction::would_remove:
            rec.action = LockAction::would_remove;
            break;
        case RemovalAction::skipped_changed:
            rec.action = LockAction::skipped_changed;
            break;
        case RemovalAction::failed:
            rec.action = LockAction::kept;
            break;
        }
    }

    const PassOptions& m_options;
    ProcessProbe& m_processes;
    TmuxProbe& m_tmux;
    const TmuxFacts& m_tmux_facts;
    const HostFacts& m_host;
    PassReport& m_report;
};

} // namespace

PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                    const HostFacts& host) {
    const auto started = std::chrono::steady_clock::now();
    PassReport report;
    report.tmux = tmux.query();
    LockHandler handler(options, processes, tmux, report.tmux, host, report);

    for (const auto& root : options.roots) {
        RootReport root_report;
        root_report.path = root;
        if (cancelled(options)) {
            root_report.ok = false;
            root_report.error = "pass cancelled";
            report.roots.push_back(std::move(root_report));
            continue;
        }
        auto walked = walk_locks(root, options.walk,
                                 [&handler](const LockSite& site) { handler.handle(site); });
        if (!walked) {
            root_report.ok = false;
            root_report.error = walked.error().message;
        } else {
            report.stats.dirs += walked->dirs;
            report.stats.unreadable_dirs += walked->unreadable_dirs;
            for (auto& e : walked->errors) {
                report.walk_errors.push_back(std::move(e));
            }
        }
        report.roots.push_back(std::move(root_report));
    }

    std::sort(report.locks.begin(), report.locks.end(),
              [](const LockRecord& a, const LockRecord& b) { return a.lock_path < b.lock_path; });
    std::vector<JudgedLock> judged;
    for (const auto& rec : report.locks) {
        if (rec.info && rec.action != LockAction::removed) {
            judged.push_back({rec.worker, *rec.info, rec.judgement});
        }
    }
    report.collisions = detect_collisions(judged);
    report.stats.locks = report.locks.size();
    report.stats.elapsed_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count());
    return report;
}

} // namespace agentlock
