# A small type checker for the declaration. A type is { name; check = path: value: normalised; } where `check`
# returns the value in its normalised form (defaults filled in, sizes in bytes, MACs lower-case) or throws a
# message naming the attribute path, such as
#   sendan: classes.worker.hardware.minCpuThreads must be a non-negative integer, got the string "16".
let
  b = builtins;
  util = import ./util.nix;
  ipv4 = import ./ipv4.nix;

  sub = path: n: if path == "" then n else "${path}.${n}";
  shown = path: if path == "" then "the cluster declaration" else path;

  mismatch = path: what: v: util.fail "${shown path} must be ${what}, got ${util.describe v}";

  simple = name: pred: {
    inherit name;
    check = path: v: if pred v then v else mismatch path name v;
  };

  orList = xs: if b.length xs < 2 then b.concatStringsSep "" xs else b.concatStringsSep ", " (b.genList (i: b.elemAt xs i) (b.length xs - 1)) + " or " + b.elemAt xs (b.length xs - 1);

  units = {
    B = 1;
    KB = 1000;
    MB = 1000 * 1000;
    GB = 1000 * 1000 * 1000;
    TB = 1000 * 1000 * 1000 * 1000;
    PB = 1000 * 1000 * 1000 * 1000 * 1000;
    KiB = 1024;
    MiB = 1024 * 1024;
    GiB = 1024 * 1024 * 1024;
    TiB = 1024 * 1024 * 1024 * 1024;
    PiB = 1024 * 1024 * 1024 * 1024 * 1024;
  };

  # "64GiB" -> 68719476736; "1.5TB" -> 1500000000000; "4096" -> 4096; anything else -> null.
  parseSize =
    s:
    let
      m = b.match "(0|[1-9][0-9]*)(\\.[0-9]+)? ?([KMGTP]i?B|B)?" s;
      whole = b.fromJSON (b.elemAt m 0);
      frac = b.elemAt m 1;
      unit = b.elemAt m 2;
      mult = if unit == null then 1 else units.${unit} or null;
    in
    if m == null || mult == null then
      null
    else if frac == null then
      whole * mult
    else
      b.floor ((whole + b.fromJSON "0${frac}") * mult);
in
rec {
  inherit parseSize sub;

  str = simple "a string" b.isString;
  nonEmptyStr = simple "a non-empty string" (v: b.isString v && v != "");
  bool = simple "true or false" b.isBool;
  nat = simple "a non-negative integer" (v: b.isInt v && v >= 0);
  positive = simple "a positive integer" (v: b.isInt v && v > 0);
  between = lo: hi: simple "an integer from ${toString lo} to ${toString hi}" (v: b.isInt v && v >= lo && v <= hi);
  port = between 1 65535;
  # A health probe's port: a number, or the name of one of the service's ports.
  portRef = simple "a port number from 1 to 65535 or a port name" (
    v: b.isInt v && v >= 1 && v <= 65535 || b.isString v && v != ""
  );
  asn = between 1 4294967295;
  anything = {
    name = "anything";
    check = _: v: v;
  };

  enum = values: simple (orList (map (v: "\"${v}\"") values)) (v: b.elem v values);

  nullOr = t: {
    name = "${t.name} or null";
    check = path: v: if v == null then null else t.check path v;
  };

  listOf = t: {
    name = "a list";
    check =
      path: v:
      if !b.isList v then
        mismatch path "a list" v
      else
        b.genList (i: t.check "${shown path}[${toString i}]" (b.elemAt v i)) (b.length v);
  };

  nonEmptyListOf = t: {
    name = "a non-empty list";
    check = path: v: if v == [ ] then util.fail "${shown path} must not be empty" else (listOf t).check path v;
  };

  attrsOf = t: {
    name = "an attribute set";
    check =
      path: v: if !b.isAttrs v then mismatch path "an attribute set" v else b.mapAttrs (n: x: t.check (sub path n) x) v;
  };

  # Field descriptors for `record`: `req t` must be given; `opt t default` may be omitted (the default is normalised
  # by `t` like a given value). `as` renames the field in the output (sizes become `...Bytes`).
  req = t: { type = t; };
  opt = t: default: {
    type = t;
    inherit default;
  };
  renamed = as: f: f // { inherit as; };

  record = fields: {
    name = "an attribute set";
    check =
      path: v:
      let
        unknown = b.filter (n: !(fields ? ${n})) (b.attrNames v);
      in
      if !b.isAttrs v then
        mismatch path "an attribute set" v
      else if unknown != [ ] then
        util.fail "${shown path} has unknown attribute '${b.head unknown}'; known attributes: ${b.concatStringsSep ", " (b.attrNames fields)}"
      else
        b.listToAttrs (
          util.mapAttrsToList (n: f: {
            name = f.as or n;
            value =
              if v ? ${n} then
                f.type.check (sub path n) v.${n}
              else if f ? default then
                f.type.check (sub path n) f.default
              else
                util.fail "${sub path n} is required";
          }) fields
        );
  };

  # An attribute set whose `type` attribute picks the record that checks it (disko's content types).
  tagged =
    variants:
    let
      names = b.attrNames variants;
      expected = orList (map (n: "\"${n}\"") names);
    in
    {
      name = "an attribute set with type ${expected}";
      check =
        path: v:
        if !b.isAttrs v then
          mismatch path "an attribute set" v
        else if !(v ? type) then
          util.fail "${sub path "type"} is required (${expected})"
        else if !(b.isString v.type && variants ? ${v.type}) then
          util.fail "${sub path "type"} must be ${expected}, got ${util.describe v.type}"
        else
          variants.${v.type}.check path v;
    };

  size = {
    name = "a size";
    check =
      path: v:
      if b.isInt v && v >= 0 then
        v
      else if b.isString v && parseSize v != null then
        parseSize v
      else if b.isString v then
        util.fail "${shown path}: '${v}' is not a size; use a number of bytes or a number with a unit such as 512MiB, 64GiB or 4TB"
      else
        mismatch path "a size (bytes, or a string such as 64GiB)" v;
  };

  address = simple "an IPv4 address such as 10.0.1.5" ipv4.isAddress;

  cidr = {
    name = "an IPv4 CIDR";
    check =
      path: v:
      let
        parsed = ipv4.parseCidr v;
      in
      if !b.isString v then
        mismatch path "an IPv4 CIDR such as 10.0.1.0/24" v
      else if parsed ? error then
        util.fail "${shown path}: ${parsed.error}"
      else
        v;
  };

  mac = {
    name = "a MAC address";
    check =
      path: v:
      if b.isString v && b.match "[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}" v != null then
        util.toLower v
      else
        mismatch path "a MAC address such as 52:54:00:12:34:56" v;
  };

  uuid = {
    name = "a UUID";
    check =
      path: v:
      if b.isString v && b.match "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" v != null then
        util.toLower v
      else
        mismatch path "a UUID such as 4c4c4544-0042-3510-8052-b4c04f4e4b31" v;
  };

  machineId = simple "a machine-id (32 lower-case hexadecimal digits)" (
    v: b.isString v && b.match "[0-9a-f]{32}" v != null
  );

  url = simple "an http:// or https:// URL" (v: b.isString v && b.match "https?://[^[:space:]]+" v != null);

  publicKey = simple "a Nix public key such as cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" (
    v: b.isString v && b.match "[^:[:space:]]+:[A-Za-z0-9+/]{43}=" v != null
  );

  flakeRef = simple "a flake reference with an attribute, such as git+https://git.example.com/infra#nixosConfigurations.{node}.config.system.build.toplevel" (
    v: b.isString v && b.match "[^#[:space:]]+#[^#[:space:]]+" v != null
  );

  storePath = simple "a store path such as /nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01" (
    v: b.isString v && b.match "/nix/store/[0-9a-df-np-sv-z]{32}-[^/[:space:]]+" v != null
  );

  # A package: a store path or flake installable as a string, or a derivation (its out path is used).
  package = {
    name = "a package";
    check =
      path: v:
      if b.isString v && v != "" then
        v
      else if b.isAttrs v && v ? outPath then
        toString v.outPath
      else
        mismatch path "a package (a derivation, a store path or a flake installable)" v;
  };
}
