# bash completion for agentlock(1)                                   -*- shell-script -*-

_agentlock() {
    local cur prev words cword
    _init_completion || return

    local commands="run acquire release check status force-release list why help version"
    local server="--config --tmux-socket --tmux-socket-path --help"
    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    local command=${words[1]}

    case $prev in
        --config)
            _filedir json
            return
            ;;
        --tmux-socket-path)
            _filedir
            return
            ;;
        --tmux-socket)
            local dir=${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)
            COMPREPLY=($(compgen -W "$(command ls "$dir" 2>/dev/null)" -- "$cur"))
            return
            ;;
        --session)
            COMPREPLY=($(compgen -W "$(tmux list-panes -a -F '#{pane_id}' 2>/dev/null)" \
                -- "$cur"))
            return
            ;;
        --pid)
            _pids
            return
            ;;
        --wait)
            COMPREPLY=($(compgen -W "500ms 5s 30s 5m 1h" -- "$cur"))
            return
            ;;
    esac

    local opts
    case $command in
        run)
            # After WORKER (and --), complete CMD and its arguments.
            local i operands=0
            for ((i = 2; i < cword; i++)); do
                if [[ ${words[i]} == -- ]]; then
                    _command_offset $((i + 1))
                    return
                fi
                case ${words[i]} in
                    --session | --wait | --config | --tmux-socket | --tmux-socket-path) ((i++)) ;;
                    -*) ;;
                    *) ((operands++)) ;;
                esac
            done
            if ((operands >= 1)); then
                COMPREPLY=($(compgen -W "--" -- "$cur"))
                [[ -z $cur ]] || _command_offset "$cword"
                return
            fi
            opts="--session --wait --no-wait $server"
            ;;
        acquire) opts="--session --pid $server" ;;
        release) opts="--pid $server" ;;
        check | why) opts="$server" ;;
        status) opts="--json $server" ;;
        force-release) opts="--even-if-live $server" ;;
        list) opts="--json $server" ;;
        help)
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
            return
            ;;
        *) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        _filedir -d
    fi
} &&
    complete -F _agentlock agentlock

# ex: filetype=sh
