"""Tar headers as Go's archive/tar writes them, and a streaming tar reader.

Writing: USTAR when every field fits (long paths split into prefix/name), otherwise one PAX extended
header (records sorted by key, named `DIR/PaxHeaders.0/BASE`) before a USTAR main header -- the same
bytes archive/tar (and so umoci, containerd, buildkit) produces for the same header.

Reading: USTAR, PAX (local records; global ones are ignored) and GNU long names, tolerant of a missing
end-of-archive marker (umoci 0.4 omits it), strict about everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from .errors import InvalidLayer

BLOCK = 512
NAME_SIZE, PREFIX_SIZE, LINK_SIZE = 100, 155, 100

REG, AREG, LNK, SYM, CHR, BLK, DIR, FIFO, CONT = b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"
PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK = b"x", b"g", b"L", b"K"
XATTR_PREFIX = "SCHILY.xattr."
ZERO_BLOCK = bytes(BLOCK)


def _fits_octal(n: int, width: int) -> bool:
    return 0 <= n < 1 << ((width - 1) * 3)


def _octal(n: int, width: int) -> bytes:
    """Zero-padded octal leaving room for a NUL, as archive/tar's formatOctal (0 when it does not fit)."""
    if not _fits_octal(n, width):
        n = 0
    return b"%0*o\0" % (width - 1, n)


def _field(s: bytes, width: int) -> bytes:
    """archive/tar's formatString: copy, NUL-terminate when room, never leave a trailing '/' when truncated."""
    if len(s) > width:
        b = bytearray(s[:width])
        if b[-1:] == b"/":
            n = len(bytes(b[:-1]).rstrip(b"/"))
            b[n] = 0
        return bytes(b)
    return s + bytes(width - len(s))


def _ascii_only(s: bytes) -> bytes:
    return bytes(c for c in s if 0 < c < 0x80)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """archive/tar's splitUSTARPath: (prefix, suffix) for a name too long for the 100-byte field."""
    length = len(name)
    if length <= NAME_SIZE or not name.isascii():
        return None
    if length > PREFIX_SIZE + 1:
        length = PREFIX_SIZE + 1
    elif name[length - 1:length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen, plen = len(name) - i - 1, i
    if i <= 0 or nlen > NAME_SIZE or nlen == 0 or plen > PREFIX_SIZE:
        return None
    return name[:i], name[i + 1:]


def pax_record(key: bytes, value: bytes) -> bytes:
    """'LEN key=value\\n' where LEN counts itself."""
    size = len(key) + len(value) + 3
    size += len(str(size))
    rec = b"%d %s=%s\n" % (size, key, value)
    if len(rec) != size:
        rec = b"%d %s=%s\n" % (len(rec), key, value)
    return rec


def _block(name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           linkname: bytes, devmajor: int, devminor: int, prefix: bytes = b"", dev_fields: bool = True) -> bytes:
    b = bytearray(BLOCK)
    b[0:100] = _field(name, 100)
    b[100:108] = _octal(mode, 8)
    b[108:116] = _octal(uid, 8)
    b[116:124] = _octal(gid, 8)
    b[124:136] = _octal(size, 12)
    b[136:148] = _octal(mtime, 12)
    b[148:156] = b"        "
    b[156:157] = typeflag
    b[157:257] = _field(linkname, 100)
    b[257:265] = b"ustar\x0000"
    # uname/gname stay empty (numeric ids only, as umoci and buildkit write)
    if dev_fields:  # archive/tar leaves them all-NUL in PAX extended header blocks
        b[329:337] = _octal(devmajor, 8)
        b[337:345] = _octal(devminor, 8)
    if prefix:
        b[345:500] = _field(prefix, 155)
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)


def encode_header(name: bytes, typeflag: bytes, *, mode: int = 0, uid: int = 0, gid: int = 0, size: int = 0,
                  mtime: int = 0, linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
                  records: dict[bytes, bytes] | None = None) -> bytes:
    """The header block(s) for one entry; `records` are extra PAX records (xattrs)."""
    pax: dict[bytes, bytes] = {}
    ustar = not records
    if not name.isascii() or len(name) > NAME_SIZE:
        pax[b"path"] = name
        if _split_ustar(name) is None:
            ustar = False
    if not linkname.isascii() or len(linkname) > LINK_SIZE:
        pax[b"linkpath"] = linkname
        ustar = False
    for key, n, width in ((b"uid", uid, 8), (b"gid", gid, 8), (b"size", size, 12), (b"mtime", mtime, 12)):
        if not _fits_octal(n, width):
            pax[key] = str(n).encode()
            ustar = False
    if not (_fits_octal(devmajor, 8) and _fits_octal(devminor, 8) and _fits_octal(mode, 8)):
        raise InvalidLayer(f"entry {name.decode(errors='replace')!r}: device numbers or mode too large for tar")
    if ustar:
        split = _split_ustar(name)
        prefix, short = split if split else (b"", name)
        return _block(short, typeflag, mode, uid, gid, size, mtime, linkname, devmajor, devminor, prefix)
    if records:
        pax.update({k: v for k, v in records.items() if k not in pax})
    data = b"".join(pax_record(k, pax[k]) for k in sorted(pax))
    head, _, base = name.rpartition(b"/")
    pax_name = b"/".join(p for p in (head.rstrip(b"/"), b"PaxHeaders.0", base) if p)
    pax_name = _ascii_only(pax_name)[:NAME_SIZE].rstrip(b"/")
    out = [_block(pax_name, PAX_LOCAL, 0, 0, 0, len(data), 0, b"", 0, 0, dev_fields=False), data, bytes(-len(data) % BLOCK)]
    out.append(_block(_ascii_only(name), typeflag, mode, uid, gid, size, mtime, _ascii_only(linkname),
                      devmajor, devminor))
    return b"".join(out)


def end_of_archive() -> bytes:
    return ZERO_BLOCK * 2


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class Entry:
    """One tar entry after PAX/GNU extensions are folded in. Names are raw bytes, as in the archive."""

    name: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.name.decode("utf-8", "backslashreplace")


def _parse_number(raw: bytes, what: str, offset: int, label: str = "") -> int:
    where = f"tar header{' of ' + repr(label) if label else ''} at offset {offset}"
    if raw[:1] and raw[0] & 0x80:
        # GNU base-256: big-endian two's complement; 0xff lead byte means negative.
        if raw[0] == 0xFF:
            raise InvalidLayer(f"{where}: negative {what}")
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    s = raw.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise InvalidLayer(f"{where}: invalid {what} field {raw!r} (not a tar stream, or corrupt)") from None


def _signed_checksum(hdr: bytes) -> int:
    """Some old tars summed the header as signed chars."""
    return sum((c ^ 0x80) - 0x80 for c in hdr[:148]) + 256 + sum((c ^ 0x80) - 0x80 for c in hdr[156:])


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _parse_pax(data: bytes, offset: int) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad the record block with NULs
            break
        sp = data.find(b" ", pos)
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise InvalidLayer(f"tar PAX header at offset {offset}: malformed record length") from None
        rec = data[pos:pos + length]
        if sp < 0 or length <= sp - pos + 1 or pos + length > len(data) or not rec.endswith(b"\n") or b"=" not in rec:
            raise InvalidLayer(f"tar PAX header at offset {offset}: malformed record")
        key, _, value = rec[sp - pos + 1:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


class TarReader:
    """Iterate the entries of a tar stream given a `read(n)` callable; read each entry's data before the next."""

    CHUNK = 1 << 20

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = b""
        self._pos = 0
        self.offset = 0  # of the next unread byte in the tar stream
        self._pending = 0  # data bytes of the current entry not yet consumed
        self._pending_pad = 0
        self._eof = False

    def _take(self, n: int) -> bytes:
        """Up to n bytes (fewer only at end of stream)."""
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
        else:
            parts = [self._buf[self._pos:]]
            need = n - avail
            self._buf, self._pos = b"", 0
            while need > 0 and not self._eof:
                chunk = self._read(max(self.CHUNK, need))
                if not chunk:
                    self._eof = True
                    break
                if len(chunk) > need:
                    parts.append(chunk[:need])
                    self._buf, self._pos = chunk, need
                    need = 0
                else:
                    parts.append(chunk)
                    need -= len(chunk)
            out = b"".join(parts)
        self.offset += len(out)
        return out

    def data(self, entry: Entry) -> Iterator[memoryview | bytes]:
        """Yield the entry's data in chunks; raises InvalidLayer if the stream ends early."""
        while self._pending > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if self._eof:
                    break
                chunk = self._read(max(self.CHUNK, min(self._pending, 8 * self.CHUNK)))
                if not chunk:
                    self._eof = True
                    break
                self._buf, self._pos, avail = chunk, 0, len(chunk)
            n = min(avail, self._pending)
            out = memoryview(self._buf)[self._pos:self._pos + n]
            self._pos += n
            self.offset += n
            self._pending -= n
            yield out
        if self._pending > 0:
            raise InvalidLayer(f"tar entry {entry.display!r}: archive ends {self._pending} bytes before the"
                               f" end of its data ({entry.size} bytes announced)")
        self._skip_padding()

    def _skip_padding(self) -> None:
        if self._pending_pad:
            self._take(self._pending_pad)  # a missing final pad is tolerated (umoci 0.4 omits it)
            self._pending_pad = 0

    def _skip_data(self) -> None:
        while self._pending > 0:
            n = min(self._pending, self.CHUNK)
            got = len(self._take(n))
            self._pending -= got
            if got < n:
                raise InvalidLayer(f"tar archive ends inside an entry's data at offset {self.offset}")
        self._skip_padding()

    def _read_payload(self, size: int, what: str, offset: int) -> bytes:
        if size > 1 << 20:
            raise InvalidLayer(f"tar {what} at offset {offset} is implausibly large ({size} bytes)")
        data = self._take(size)
        if len(data) < size:
            raise InvalidLayer(f"tar archive ends inside a {what} at offset {offset}")
        self._take(-size % BLOCK)
        return data

    def __iter__(self) -> Iterator[Entry]:
        pax: dict[bytes, bytes] = {}
        longname = longlink = None
        while True:
            if self._pending:
                self._skip_data()  # caller did not read the data
            start = self.offset
            hdr = self._take(BLOCK)
            if not hdr:
                return  # no end-of-archive marker: tolerated
            if len(hdr) < BLOCK:
                raise InvalidLayer(f"tar archive truncated inside a header at offset {start}")
            if hdr == ZERO_BLOCK:
                return
            stored = _parse_number(hdr[148:156], "checksum", start)
            if stored != sum(hdr) - sum(hdr[148:156]) + 256 and stored != _signed_checksum(hdr):
                raise InvalidLayer(f"tar header at offset {start}: bad checksum (not a tar stream, or corrupt)")
            typeflag = hdr[156:157]
            label = _cstr(hdr[0:100]).decode("utf-8", "backslashreplace")
            size = _parse_number(hdr[124:136], "size", start, label)
            if typeflag in (PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                payload = self._read_payload(size, "extended header", start)
                if typeflag == PAX_LOCAL:
                    pax.update(_parse_pax(payload, start))
                elif typeflag == GNU_LONGNAME:
                    longname = _cstr(payload)
                elif typeflag == GNU_LONGLINK:
                    longlink = _cstr(payload)
                continue  # global PAX headers carry nothing a layer needs
            magic = hdr[257:265]
            name = _cstr(hdr[0:100])
            if magic == b"ustar\x0000":
                prefix = _cstr(hdr[345:500])
                if prefix:
                    name = prefix + b"/" + name
            entry = Entry(
                name=longname if longname is not None else name,
                type=typeflag,
                mode=_parse_number(hdr[100:108], "mode", start, label) & 0o7777,
                uid=_parse_number(hdr[108:116], "uid", start, label),
                gid=_parse_number(hdr[116:124], "gid", start, label),
                size=size,
                mtime=_parse_number(hdr[136:148], "mtime", start, label),
                linkname=longlink if longlink is not None else _cstr(hdr[157:257]),
                devmajor=_parse_number(hdr[329:337], "devmajor", start, label) if magic[:5] == b"ustar" else 0,
                devminor=_parse_number(hdr[337:345], "devminor", start, label) if magic[:5] == b"ustar" else 0,
            )
            self._apply_pax(entry, pax, start)
            pax, longname, longlink = {}, None, None
            if entry.type not in (REG, AREG, CONT, LNK, SYM, CHR, BLK, DIR, FIFO):
                raise InvalidLayer(f"tar entry {entry.display!r}: unsupported type {entry.type!r}")
            if b"\0" in entry.name or b"\0" in entry.linkname:
                raise InvalidLayer(f"tar entry {entry.display!r}: NUL byte in name")
            # As archive/tar: links, devices, dirs and fifos carry no data whatever their size field says.
            if entry.type not in (REG, AREG, CONT):
                entry.size = 0
            self._pending = entry.size
            self._pending_pad = -entry.size % BLOCK
            yield entry

    @staticmethod
    def _apply_pax(entry: Entry, pax: dict[bytes, bytes], offset: int) -> None:
        for key, value in pax.items():
            try:
                if key == b"path":
                    entry.name = value
                elif key == b"linkpath":
                    entry.linkname = value
                elif key == b"size":
                    entry.size = int(value)
                elif key == b"uid":
                    entry.uid = int(value)
                elif key == b"gid":
                    entry.gid = int(value)
                elif key == b"mtime":
                    entry.mtime = float(value)
                elif key.startswith(b"SCHILY.xattr."):
                    entry.xattrs[key[len(b"SCHILY.xattr."):].decode("utf-8", "surrogateescape")] = value
            except ValueError:
                raise InvalidLayer(f"tar PAX header at offset {offset}: invalid {key.decode(errors='replace')}"
                                   f" value {value[:40]!r}") from None
        if entry.size < 0 or entry.uid < 0 or entry.gid < 0:
            raise InvalidLayer(f"tar entry {entry.display!r}: negative size/uid/gid")
