# Evaluates one error case (a file in ./errors) for the t30_nix_lib driver:
#
#   nix-instantiate --eval --strict --json nix/tests/error-case.nix --arg case ./nix/tests/errors/pool-exhausted.nix -A result
#
# `result` must throw a message containing `meta.expect`. For cases with `parity = true`, `unchecked` is the same
# document with Nix's semantic checks collected instead of thrown, for sendan-core's validator to be compared with.
{ case }:
let
  lib = import ../lib;
  c = import case;
  evaluate = c.evaluate or (cluster: cluster.spec);
in
{
  meta = {
    inherit (c) expect;
    parity = c.parity or false;
  };
  result = evaluate (lib.mkCluster c.declaration);
  unchecked = lib.internal.uncheckedCluster c.declaration;
}
