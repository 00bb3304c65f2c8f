# IPv4 arithmetic in pure Nix. Addresses are integers (0 .. 2^32-1) inside the library and dotted quads at its
# edges; a CIDR is { network, prefixLength, first, last, text } where first/last are the network and broadcast
# addresses as integers.
let
  b = builtins;
  util = import ./util.nix;
in
rec {
  # "10.0.1.5" -> 167772421, or null when the string is not a dotted quad of decimal octets (no leading zeros).
  parse =
    s:
    let
      m = if b.isString s then b.match "([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})" s else null;
      octet = o: if b.match "0|[1-9][0-9]*" o == null then null else b.fromJSON o;
      octets = if m == null then [ ] else map octet m;
    in
    if m == null || b.any (o: o == null || o > 255) octets then
      null
    else
      b.foldl' (acc: o: acc * 256 + o) 0 octets;

  format =
    n:
    b.concatStringsSep "." (
      map toString [
        (n / 16777216)
        (util.mod (n / 65536) 256)
        (util.mod (n / 256) 256)
        (util.mod n 256)
      ]
    );

  isAddress = s: parse s != null;

  # "10.0.1.0/24" -> { network; prefixLength; first; last; size; text }, or { error = "why"; }.
  parseCidr =
    s:
    let
      m = if b.isString s then b.match "([^/]+)/([0-9]{1,2})" s else null;
      addr = if m == null then null else parse (b.head m);
      prefixLength = if m == null then null else b.fromJSON (b.elemAt m 1);
      size = util.pow2 (32 - prefixLength);
      network = addr - util.mod addr size;
    in
    if m == null || addr == null || prefixLength > 32 then
      { error = "'${toString s}' is not an IPv4 CIDR such as 10.0.1.0/24"; }
    else if network != addr then
      { error = "${s} has host bits set; did you mean ${format network}/${toString prefixLength}?"; }
    else
      {
        inherit network prefixLength size;
        first = network;
        last = network + size - 1;
        text = s;
      };

  contains = cidr: a: a >= cidr.first && a <= cidr.last;

  # The addresses a host may use: all but the network and broadcast address, except in /31 and /32 (RFC 3021).
  usableFirst = cidr: if cidr.prefixLength >= 31 then cidr.first else cidr.first + 1;
  usableLast = cidr: if cidr.prefixLength >= 31 then cidr.last else cidr.last - 1;
  isUsable = cidr: a: a >= usableFirst cidr && a <= usableLast cidr;

  overlaps = x: y: x.first <= y.last && y.first <= x.last;
}
