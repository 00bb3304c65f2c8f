# Small helpers over builtins. The Sendan library evaluates without nixpkgs (and so without nixpkgs' `lib`),
# so the few list, attribute-set and string functions it needs live here.
let
  b = builtins;
in
rec {
  mod = a: n: a - (a / n) * n;

  pow2 = n: b.foldl' (acc: _: acc * 2) 1 (b.genList (i: i) n);

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];

  mapAttrsToList = f: attrs: map (n: f n attrs.${n}) (b.attrNames attrs);

  filterAttrs =
    pred: attrs:
    b.listToAttrs (
      b.concatMap (n: optional (pred n attrs.${n}) {
        name = n;
        value = attrs.${n};
      }) (b.attrNames attrs)
    );

  genAttrs =
    names: f:
    b.listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );

  # `lhs` with `rhs` merged in; nested attribute sets are merged rather than replaced.
  recursiveUpdate =
    lhs: rhs:
    lhs
    // b.mapAttrs (
      n: v: if b.isAttrs v && b.isAttrs (lhs.${n} or null) then recursiveUpdate lhs.${n} v else v
    ) rhs;

  unique = xs: b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ] xs;

  sortStrings = b.sort b.lessThan;

  # Every unordered pair of distinct positions, in list order: [a b c] -> [[a b] [a c] [b c]].
  pairs =
    xs:
    let
      n = b.length xs;
    in
    b.concatMap (i: b.genList (j: [ (b.elemAt xs i) (b.elemAt xs (i + j + 1)) ]) (n - i - 1)) (
      b.genList (i: i) n
    );

  findFirst =
    pred: default: xs:
    let
      hits = b.filter pred xs;
    in
    if hits == [ ] then default else b.head hits;

  hasPrefix = prefix: s: b.substring 0 (b.stringLength prefix) s == prefix;

  upperCase = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lowerCase = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = b.replaceStrings upperCase lowerCase;
  toUpper = b.replaceStrings lowerCase upperCase;

  padLeft =
    width: char: s:
    let
      missing = width - b.stringLength s;
    in
    if missing > 0 then b.concatStringsSep "" (b.genList (_: char) missing) + s else s;

  quote = s: "'${s}'";

  # ["a"] -> "a"; ["a" "b"] -> "a and b"; ["a" "b" "c"] -> "a, b and c".
  joinAnd =
    xs:
    let
      n = b.length xs;
    in
    if n == 0 then
      ""
    else if n == 1 then
      b.head xs
    else
      b.concatStringsSep ", " (b.genList (i: b.elemAt xs i) (n - 1)) + " and " + b.elemAt xs (n - 1);

  # How a value reads in an error message.
  describe =
    v:
    if b.isString v then
      "the string \"${v}\""
    else if b.isInt v then
      "the integer ${toString v}"
    else if b.isFloat v then
      "the number ${toString v}"
    else if b.isBool v then
      (if v then "true" else "false")
    else if v == null then
      "null"
    else if b.isList v then
      "a list"
    else if b.isFunction v then
      "a function"
    else if b.isPath v then
      "the path ${toString v}"
    else if b.isAttrs v then
      "an attribute set"
    else
      b.typeOf v;

  fail = msg: throw "sendan: ${msg}";
}
