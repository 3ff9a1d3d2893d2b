"""The open-file limit. 10,000 idle connections need more descriptors than a shell's
usual 1024, in the client and in each proxy; both inherit the limit set here."""
import resource

WANT = 65536


def raise_nofile(want=WANT):
    """Raise RLIMIT_NOFILE to `want` (the hard limit too: needs root), else as far as
    the hard limit allows. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            new_hard = hard if hard == resource.RLIM_INFINITY else max(hard, want)
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
