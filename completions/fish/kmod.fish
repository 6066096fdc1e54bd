# fish completion for kmod-rs: kmod and the six tools it also runs as.
#
# fish loads a command's completions from a file named after the command, so this
# file is installed as kmod.fish with links to it named insmod.fish, rmmod.fish,
# lsmod.fish, modinfo.fish, modprobe.fish and depmod.fish. It defines all seven at
# once; the guard keeps each link from adding them again.
if set -q __kmod_completions_loaded
    return
end
set -g __kmod_completions_loaded

# The value last given to the option -$short or --$long before the word being
# completed, in any of the forms -xVALUE, -x VALUE, --long=VALUE and --long VALUE.
function __kmod_option_value --argument-names short long
    set -l tokens (commandline -opc)
    set -l value
    set -l i 2
    while test $i -le (count $tokens)
        switch $tokens[$i]
            case -$short --$long
                set i (math $i + 1)
                set value $tokens[$i]
            case --$long=\*
                set value (string replace -- --$long= '' $tokens[$i])
            case -$short\*
                set value (string sub -s 3 -- $tokens[$i])
        end
        set i (math $i + 1)
    end
    echo $value
end

# Whether any of the modprobe options in $argv was given before the word being
# completed. Short options are also found in bundles such as -vr, up to a letter
# that takes a value (the rest of the word is that value).
function __kmod_modprobe_seen
    for token in (commandline -opc)[2..-1]
        contains -- $token $argv; and return 0
        string match -qr -- '^-[^-]' $token; or continue
        set -l flags (string sub -s 2 -- $token | string replace -r -- '[CdSw].*' '')
        for option in $argv
            if string match -qr -- '^-.$' $option
                and string match -q -- "*"(string sub -s 2 -- $option)"*" "$flags"
                return 0
            end
        end
    end
    return 1
end

# The words before the one being completed that are neither options nor option
# values; $argv are the options that take a value as a separate word.
function __kmod_args
    set -l tokens (commandline -opc)
    set -l i 2
    while test $i -le (count $tokens)
        set -l token $tokens[$i]
        if test $token = --
            printf '%s\n' $tokens[(math $i + 1)..-1]
            return
        else if contains -- $token $argv
            set i (math $i + 1)
        else if not string match -q -- '-*' $token
            echo $token
        end
        set i (math $i + 1)
    end
end

# The kernel releases that have a module directory under root $root (module directory
# $moduledir, lib/modules by default).
function __kmod_kernel_versions --argument-names root moduledir
    test -n "$moduledir"; or set moduledir lib/modules
    for dir in $root/$moduledir/*/
        basename $dir
    end
end

# The names modprobe and modinfo accept under root $root for kernel release $release:
# every module of modules.dep, spelled as its file is, and the aliases modules
# declare that are plain words (bus aliases with ':' and wildcards are not typed by
# hand).
function __kmod_module_names --argument-names root release
    test -n "$release"; or set release (uname -r)
    set -l files
    for file in $root/lib/modules/$release/modules.{dep,alias}
        test -r $file; and set -a files $file
    end
    set -q files[1]; or return
    awk '
        FILENAME ~ /modules\.dep$/ {
            sub(/:.*/, ""); sub(/.*\//, ""); sub(/\.ko(\.[a-z]+)?$/, ""); print; next
        }
        $1 == "alias" && $2 ~ /^[A-Za-z0-9_-]+$/ { print $2 }
    ' $files
end

function __kmod_loaded_modules
    test -r /proc/modules; and string replace -r ' .*' '' </proc/modules
end

# "name=" for each parameter of a module, from modinfo; $argv are modinfo's arguments.
function __kmod_parameters
    command -q modinfo; or return
    modinfo -F parm $argv 2>/dev/null | string replace -rf '^(\w+):.*' '$1='
end

function __kmod_module_files
    __fish_complete_suffix .ko
    __fish_complete_suffix .ko.gz
    __fish_complete_suffix .ko.xz
    __fish_complete_suffix .ko.zst
end

# insmod
function __kmod_insmod_arguments
    set -l args (__kmod_args)
    if set -q args[1]
        __kmod_parameters $args[1]
    else
        __kmod_module_files
    end
end
complete -c insmod -f -a '(__kmod_insmod_arguments)'
complete -c insmod -s f -l force -d 'Ignore the version magic and symbol versions'
complete -c insmod -s s -l syslog -d 'Send messages to syslog'
complete -c insmod -s v -l verbose -d 'Print more messages'
complete -c insmod -s V -l version -d 'Print the version and exit'
complete -c insmod -s h -l help -d 'Print a usage summary and exit'

# rmmod
complete -c rmmod -f -a '(__kmod_loaded_modules)'
complete -c rmmod -s f -l force -d 'Unload even if in use'
complete -c rmmod -s s -l syslog -d 'Send messages to syslog'
complete -c rmmod -s v -l verbose -d 'Print more messages'
complete -c rmmod -s V -l version -d 'Print the version and exit'
complete -c rmmod -s h -l help -d 'Print a usage summary and exit'

# lsmod
complete -c lsmod -f
complete -c lsmod -s s -l syslog -d 'Send messages to syslog'
complete -c lsmod -s v -l verbose -d 'Print more messages'
complete -c lsmod -s V -l version -d 'Print the version and exit'
complete -c lsmod -s h -l help -d 'Print a usage summary and exit'
complete -c lsmod -l json -d 'Print JSON'

# modinfo
# Module names, or module files once the word has a slash.
function __kmod_modinfo_arguments
    if string match -q -- '*/*' (commandline -ct)
        __kmod_module_files
    else
        __kmod_module_names (__kmod_option_value b basedir) (__kmod_option_value k set-version)
    end
end
complete -c modinfo -f -a '(__kmod_modinfo_arguments)'
complete -c modinfo -s a -l author -d 'Print only the author'
complete -c modinfo -s d -l description -d 'Print only the description'
complete -c modinfo -s l -l license -d 'Print only the license'
complete -c modinfo -s p -l parameters -d 'Print only the parameters'
complete -c modinfo -s n -l filename -d 'Print only the file name'
complete -c modinfo -s F -l field -x -d 'Print only this field' -a 'alias author depends
    description filename firmware import_ns intree license name parm retpoline
    sig_hashalgo sig_id sig_key signature signer softdep srcversion vermagic weakdep'
complete -c modinfo -s 0 -l null -d 'End lines with NUL bytes'
complete -c modinfo -s m -l modname -d 'Take arguments as module names only'
complete -c modinfo -s k -l set-version -x -d 'Use the modules of another kernel release' \
    -a '(__kmod_kernel_versions (__kmod_option_value b basedir))'
complete -c modinfo -s b -l basedir -x -d 'Root directory of /lib/modules' -a '(__fish_complete_directories)'
complete -c modinfo -s V -l version -d 'Print the version and exit'
complete -c modinfo -s h -l help -d 'Print a usage summary and exit'
complete -c modinfo -l json -d 'Print every field as JSON'

# modprobe
function __kmod_modprobe_arguments
    set -l root (__kmod_option_value d dirname)
    set -l release (__kmod_option_value S set-version)
    if __kmod_modprobe_seen --show-modversions --dump-modversions --show-exports
        or string match -q -- '*/*' (commandline -ct)
        __kmod_module_files
    else if __kmod_modprobe_seen -r --remove --remove-holders --remove-dependencies
        __kmod_loaded_modules
    else
        set -l args (__kmod_args -C --config -d --dirname -S --set-version -w --wait)
        if set -q args[1]; and not __kmod_modprobe_seen -a --all
            set -l modinfo_args
            test -n "$root"; and set -a modinfo_args -b $root
            test -n "$release"; and set -a modinfo_args -k $release
            __kmod_parameters $modinfo_args $args[1]
        else
            __kmod_module_names "$root" "$release"
        end
    end
end
complete -c modprobe -f -a '(__kmod_modprobe_arguments)'
complete -c modprobe -s a -l all -d 'Take every argument as a module'
complete -c modprobe -s r -l remove -d 'Remove modules instead of inserting them'
complete -c modprobe -l remove-holders -d 'Also remove the modules holding it'
complete -c modprobe -l remove-dependencies -d 'Older spelling of --remove-holders'
complete -c modprobe -s w -l wait -x -d 'Wait this many milliseconds for a busy module'
complete -c modprobe -l first-time -d 'Fail if there is nothing to do'
complete -c modprobe -s i -l ignore-install -d 'Ignore install and remove commands'
complete -c modprobe -l ignore-remove -d 'Ignore install and remove commands'
complete -c modprobe -s b -l use-blacklist -d 'Apply the blacklist to module names too'
complete -c modprobe -s f -l force -d 'Ignore the version magic and symbol versions'
complete -c modprobe -l force-modversion -d 'Ignore symbol versions'
complete -c modprobe -l force-vermagic -d 'Ignore the version magic'
complete -c modprobe -s R -l resolve-alias -d 'Print the modules a name resolves to'
complete -c modprobe -s D -l show-depends -d 'Print what loading would do'
complete -c modprobe -s c -l showconfig -d 'Print the configuration'
complete -c modprobe -l show-config -d 'Print the configuration'
complete -c modprobe -l show-modversions -d 'Print the symbol versions a module file needs'
complete -c modprobe -l dump-modversions -d 'Older spelling of --show-modversions'
complete -c modprobe -l show-exports -d 'Print the symbols a module file exports'
complete -c modprobe -l json -d 'With -D, -R or -c: print JSON'
complete -c modprobe -s n -l dry-run -d 'Do not insert or remove anything'
complete -c modprobe -l show -d 'Do not insert or remove anything'
complete -c modprobe -s C -l config -r -d 'Read this configuration instead'
complete -c modprobe -s d -l dirname -x -d 'Root directory of /lib/modules' -a '(__fish_complete_directories)'
complete -c modprobe -s S -l set-version -x -d 'Use the modules of another kernel release' \
    -a '(__kmod_kernel_versions (__kmod_option_value d dirname))'
complete -c modprobe -s s -l syslog -d 'Send messages to syslog'
complete -c modprobe -s q -l quiet -d 'Print no messages'
complete -c modprobe -s v -l verbose -d 'Print the actions and more messages'
complete -c modprobe -s V -l version -d 'Print the version and exit'
complete -c modprobe -s h -l help -d 'Print a usage summary and exit'

# depmod
function __kmod_depmod_arguments
    set -l args (__kmod_args -b --basedir -m --moduledir -o --outdir -C --config \
        -E --symvers -F --filesyms -P --symbol-prefix)
    if set -q args[1]
        __kmod_module_files
    else
        __kmod_kernel_versions (__kmod_option_value b basedir) \
            (string replace -r '^/' '' -- (__kmod_option_value m moduledir))
    end
end
complete -c depmod -f -a '(__kmod_depmod_arguments)'
complete -c depmod -s a -l all -d 'Scan all modules'
complete -c depmod -s A -l quick -d 'Do nothing if no module is newer than modules.dep'
complete -c depmod -s b -l basedir -x -d 'Root directory of the module directory' -a '(__fish_complete_directories)'
complete -c depmod -s m -l moduledir -x -d 'Module directory instead of /lib/modules' -a '(__fish_complete_directories)'
complete -c depmod -s o -l outdir -x -d 'Root directory of the output' -a '(__fish_complete_directories)'
complete -c depmod -s C -l config -r -d 'Read this configuration instead'
complete -c depmod -s E -l symvers -r -d 'Kernel symbols and versions from Module.symvers'
complete -c depmod -s F -l filesyms -r -d 'Kernel symbols from System.map'
complete -c depmod -s e -l errsyms -d 'Report unresolved symbols'
complete -c depmod -s n -l show -d 'Write the files to standard output'
complete -c depmod -l dry-run -d 'Write the files to standard output'
complete -c depmod -s P -l symbol-prefix -x -d 'Symbol prefix to ignore'
complete -c depmod -s v -l verbose -d 'Print each dependency found'
complete -c depmod -s w -l warn -d 'Warn about duplicate entries'
complete -c depmod -l cache -d 'Keep and reuse what was read of each module'
complete -c depmod -l no-cache -d 'Neither read nor write modules.cache'
complete -c depmod -s V -l version -d 'Print the version and exit'
complete -c depmod -s h -l help -d 'Print a usage summary and exit'

# kmod sign's positional arguments: the hash where it goes (first, or after -s's raw
# signature), file names elsewhere.
function __kmod_sign_args
    set -l raw 0
    set -l args
    for token in (commandline -opc)[3..-1]
        switch $token
            case --raw-signature
                set raw 1
            case '--*'
            case '-*'
                string match -q -- '*s*' $token; and set raw 1
            case '*'
                set -a args $token
        end
    end
    if test (count $args) -eq $raw
        printf '%s\n' sha256 sha384 sha512
    else
        __fish_complete_path (commandline -ct)
    end
end

# kmod [options] command [command options]
set -l __kmod_commands help list static-nodes sign verify insmod rmmod lsmod modinfo modprobe depmod
# The other tools' completions, for "kmod TOOL ...", as if TOOL were the command.
function __kmod_delegate
    set -l tokens (commandline -opc)[2..-1]
    while string match -q -- '-*' $tokens[1]
        set -e tokens[1]
    end
    test $tokens[1] = list; and set tokens[1] lsmod
    complete -C (string join ' ' -- (string escape -- $tokens (commandline -ct)))
end
complete -c kmod -f
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -s V -l version -d 'Print the version and exit'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -s h -l help -d 'Print a usage summary and exit'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a help -d 'Print a usage summary'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a list -d 'List the loaded modules'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a static-nodes -d 'Print the device nodes modules ask for'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a sign -d "Sign a module as the kernel's sign-file does"
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a verify -d 'Check module signatures'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a insmod -d 'Load a module file'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a rmmod -d 'Unload modules'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a lsmod -d 'List the loaded modules'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a modinfo -d 'Show module information'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a modprobe -d 'Load or unload modules with their dependencies'
complete -c kmod -n "not __fish_seen_subcommand_from $__kmod_commands" -a depmod -d 'Generate the module indexes'
complete -c kmod -n '__fish_seen_subcommand_from static-nodes' -s f -l format -x -d 'Output format' \
    -a 'human\t"Readable, the default" tmpfiles\t"tmpfiles.d lines" devname\t"modules.devname lines"'
complete -c kmod -n '__fish_seen_subcommand_from static-nodes' -s o -l output -r -d 'Write to this file'
complete -c kmod -n '__fish_seen_subcommand_from static-nodes' -s h -l help -d 'Print a usage summary and exit'
complete -c kmod -n '__fish_seen_subcommand_from list insmod rmmod lsmod modinfo modprobe depmod' -a '(__kmod_delegate)'
complete -c kmod -n '__fish_seen_subcommand_from sign' -s p -l save-signature -d 'Also write the signature to MODULE.p7s'
complete -c kmod -n '__fish_seen_subcommand_from sign' -s d -l detach -d 'Only write the signature to MODULE.p7s'
complete -c kmod -n '__fish_seen_subcommand_from sign' -s k -l key-id -d 'Name the signer by subject key identifier'
complete -c kmod -n '__fish_seen_subcommand_from sign' -s s -l raw-signature -d 'Append a signature made elsewhere'
complete -c kmod -n '__fish_seen_subcommand_from sign' -s V -l version -d 'Print the version and exit'
complete -c kmod -n '__fish_seen_subcommand_from sign' -s h -l help -d 'Print a usage summary and exit'
complete -c kmod -n '__fish_seen_subcommand_from sign' -a '(__kmod_sign_args)'
complete -c kmod -n '__fish_seen_subcommand_from verify' -s c -l cert -r -F -d 'Trust the certificates in this file or directory'
complete -c kmod -n '__fish_seen_subcommand_from verify' -s k -l kernel -r -F -d 'Trust the certificates built into this kernel image'
complete -c kmod -n '__fish_seen_subcommand_from verify' -s V -l version -d 'Print the version and exit'
complete -c kmod -n '__fish_seen_subcommand_from verify' -s h -l help -d 'Print a usage summary and exit'
complete -c kmod -n '__fish_seen_subcommand_from verify' -F
