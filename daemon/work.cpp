#include "work.hpp"

#include "watch_plan.hpp"

#include <agentlock/scope.hpp>
#include <agentlock/tmux_probe.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>

namespace agentlock::daemon {

namespace {

// Logs each lock of a pass as the worker thread handles it, so that no record outlives its
// moment (the loop thread does not touch the logger while a pass runs).
class LoggingSink final : public PassSink {
public:
    explicit LoggingSink(PassLogger& log) : m_log(log) {}
    void on_tmux(const std::vector<TmuxServerReport>& servers) override { m_servers = servers; }
    void on_lock(LockRecord&& record) override {
        m_log.log_lock(record, record.tmux_server < m_servers.size()
                                   ? m_servers[record.tmux_server].facts
                                   : m_none);
    }

private:
    PassLogger& m_log;
    std::vector<TmuxServerReport> m_servers;
    TmuxFacts m_none;
};

} // namespace

PassRunner system_pass_runner(HostFacts host) {
    return
        [host = std::move(host)](const PassOptions& options, const Config& config, PassSink& sink) {
            SystemProcessProbe processes;
            SystemTmuxProbes tmux(config.tmux_timeout);
            return run_pass(options, processes, tmux, host, sink);
        };
}

Backend system_backend(const HostFacts& host) {
    Backend b;
    b.pass = system_pass_runner(host);
    b.check = [host](const std::string& worker, const PassOptions& options, const Config& config,
                     const TmuxFacts* fresh_tmux) {
        SystemProcessProbe processes;
        SystemTmuxProbes tmux(config.tmux_timeout);
        return check_worker(worker, options, processes, tmux, host, fresh_tmux);
    };
    b.tmux = [](const TmuxServer& server, const Config& config) {
        SystemTmuxProbe tmux(server, config.tmux_timeout);
        return tmux.query();
    };
    return b;
}

MonitorSettings monitor_settings_of(const Config& config) {
    MonitorSettings s;
    s.roots = config.roots;
    s.scope = pass_options_of(config).walk;
    s.interval = config.interval;
    s.events_pass_period = pass_period(config, true);
    s.polling_pass_period = pass_period(config, false);
    return s;
}

bool scope_differs(const Config& a, const Config& b) {
    return a.roots != b.roots || a.prune != b.prune || a.max_depth != b.max_depth ||
           a.one_file_system != b.one_file_system || a.tmux_socket != b.tmux_socket ||
           a.tmux_socket_path != b.tmux_socket_path || a.root_tmux != b.root_tmux;
}

bool note_server(ServersSeen& seen, const ServerRef& server, const TmuxFacts& facts) {
    if (facts.state == TmuxState::unknown) {
        return false;
    }
    ServerSeen now;
    if (facts.state == TmuxState::ok) {
        now = ServerSeen{facts.server_pid, facts.server_started};
    }
    const auto [it, first] = seen.try_emplace(server, now);
    if (first || it->second == now) {
        return false;
    }
    it->second = now;
    return true;
}

PassOutcome run_full_pass(const Backend& backend, const PassOptions& options, const Config& config,
                          PassLogger& log, DirWatcher* dirs, ServersSeen* seen) {
    PassOutcome outcome;
    try {
        log.begin_pass();
        LoggingSink sink(log);
        outcome.report = backend.pass(options, config, sink);
        if (seen != nullptr) {
            // Every lock of the pass was judged against these answers.
            for (const auto& server : outcome.report->tmux_servers) {
                (void)note_server(*seen, server.server, server.facts);
            }
        }
        // Records the runner kept instead of streaming them: logged now, as if streamed.
        for (const auto& rec : outcome.report->locks) {
            log.log_lock(rec, tmux_facts_of(*outcome.report, rec));
        }
        if (outcome.report->summaries.empty()) {
            summarize_locks(*outcome.report);
        }
        outcome.report->locks.clear();
        const bool cancelled = options.cancel != nullptr && options.cancel->load();
        if (dirs != nullptr && !cancelled) {
            // Every worker whose .runtime held a lock, removed ones too: the next agent writes
            // its lock there.
            std::vector<std::string_view> workers;
            workers.reserve(outcome.report->summaries.size());
            unsigned deepest = 0;
            for (const auto& s : outcome.report->summaries) {
                workers.emplace_back(s.worker.view());
                if (const std::string* root = root_containing(options.roots, s.worker.view())) {
                    deepest = std::max(deepest, depth_below(*root, s.worker.view()).value_or(0));
                }
            }
            const std::uint64_t round = dirs->begin_marking();
            FleetWatch watched = watch_fleet(options.roots, workers, options.walk,
                                             watch_depth_for(deepest, options.walk), *dirs);
            if (watched.worst != AddWatch::exhausted) {
                dirs->drop_unmarked(round); // what the fleet no longer needs
            }
            outcome.watch = watched.worst;
            outcome.watch_error = watched.error;
        }
    } catch (const std::exception& e) {
        outcome.error = e.what();
    } catch (...) {
        outcome.error = "unknown exception";
    }
    return outcome;
}

BatchOutcome run_recheck_batch(const Backend& backend, RecheckBatch batch,
                               const PassOptions& options, const Config& config, DirWatcher* dirs,
                               ServersSeen* seen) {
    const auto started = std::chrono::steady_clock::now();
    BatchOutcome out;
    auto note_watch = [&out](AddWatch r, const std::string& error) {
        if (r == AddWatch::exhausted && out.watch != AddWatch::exhausted) {
            out.watch = r;
            out.watch_error = error;
        }
    };
    try {
        std::map<std::string, std::string> todo = std::move(batch.checks);
        // Each server asked once, for the waiting locks of every root it serves; a lock is
        // judged again with its own server's answer only.
        std::map<ServerRef, std::vector<SessionWait>> waits;
        for (auto& wait : batch.session_waits) {
            if (root_containing(options.roots, wait.worker) != nullptr) {
                const ServerRef server =
                    wait.server.value_or(tmux_server_of_path(options, wait.worker));
                waits[server].push_back(std::move(wait));
            }
        }
        std::map<std::string, const TmuxFacts*> fresh; // worker -> its server's answer
        out.tmux_servers.reserve(waits.size());        // the pointers in `fresh` stay valid
        for (auto& [server, server_waits] : waits) {
            TmuxServerReport answer{server, {}, {}};
            answer.facts = server.unresolved.empty() ? backend.tmux(server.server, config)
                                                     : unresolved_tmux_facts(server);
            out.tmux_servers.push_back(std::move(answer));
            const TmuxFacts& facts = out.tmux_servers.back().facts;
            if (!out.tmux ||
                (facts.state == TmuxState::unknown && out.tmux->state != TmuxState::unknown)) {
                out.tmux = facts;
            }
            const bool replaced = seen != nullptr && note_server(*seen, server, facts);
            for (auto& worker : workers_to_recheck(server_waits, facts, replaced)) {
                // check_worker takes a fresh answer as its root's server's: one from the server
                // a lock records is not handed on (the lock may have been replaced meanwhile by
                // one that records none); check_worker asks that server itself.
                if (server == tmux_server_of_path(options, worker)) {
                    fresh[worker] = &facts;
                }
                todo[std::move(worker)] = "tmux";
            }
        }
        const unsigned depth = watch_depth_for(batch.deepest_worker, options.walk);
        for (const auto& path : batch.scans) {
            const std::string* root = root_containing(options.roots, path);
            if (root == nullptr || dirs == nullptr) {
                continue;
            }
            ScanResult found = scan_new_directory(*root, path, options.walk, depth, *dirs);
            ++out.scans;
            note_watch(found.watch, found.error);
            for (const auto& worker : found.workers) {
                todo.emplace(worker, "inotify");
            }
        }
        for (const auto& [worker, trigger] : todo) {
            if (options.cancel != nullptr && options.cancel->load()) {
                break; // stopping: no removal starts now
            }
            const auto asked = fresh.find(worker);
            const TmuxFacts* facts =
                trigger == "tmux" && asked != fresh.end() ? asked->second : nullptr;
            WorkerCheck check = backend.check(worker, options, config, facts);
            if (dirs != nullptr && check.state == WorkerCheck::State::found) {
                // A lock here: watch the way to it, so that its next change is seen.
                const FleetWatch way = watch_way(check.root, check.worker, *dirs);
                note_watch(way.worst, way.error);
            }
            out.checks.push_back({std::move(check), trigger});
        }
    } catch (const std::exception& e) {
        out.error = e.what();
    } catch (...) {
        out.error = "unknown exception";
    }
    out.elapsed_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count());
    return out;
}

void log_recheck_batch(const BatchOutcome& outcome, const LockTable& table, PassLogger& log,
                       EventLog& events) {
    if (!outcome.error.empty()) {
        events.log(LogLevel::error, "check.failed", {{"error", outcome.error}});
    }
    std::size_t tmux_rechecks = 0;
    std::size_t removed = 0;
    std::set<std::string> triggers;
    for (const auto& c : outcome.checks) {
        tmux_rechecks += c.trigger == "tmux" ? 1u : 0u;
        removed += c.check.state == WorkerCheck::State::found &&
                           c.check.record.action == LockAction::removed
                       ? 1u
                       : 0u;
        triggers.insert(c.trigger);
    }
    if (!outcome.checks.empty()) {
        log.log_checks(outcome.checks, table.tmux(), table.collisions(), table.frozen_roots());
    }
    if (!outcome.checks.empty() || outcome.scans > 0) {
        events.log(LogLevel::debug, "check.completed",
                   {{"checks", std::to_string(outcome.checks.size())},
                    {"scans", std::to_string(outcome.scans)},
                    {"removed", std::to_string(removed)},
                    {"triggers", join_names(triggers)},
                    {"elapsed_ms", std::to_string(outcome.elapsed_ms)}});
    }
    if (outcome.tmux) {
        std::vector<std::pair<std::string, std::string>> fields{
            {"tmux_state", std::string(to_string(outcome.tmux->state))},
            {"rechecks", std::to_string(tmux_rechecks)},
            {"tmux_server", outcome.tmux->server}};
        if (outcome.tmux->state != TmuxState::ok) {
            fields.emplace_back("tmux_detail", outcome.tmux->detail); // why, e.g. a timeout
        }
        events.log(LogLevel::debug, "tmux.polled", fields);
    }
}

} // namespace agentlock::daemon
