# A service selects a pool that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web' uses unknown pool 'gpus'";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.pools = [ "gpus" ]; };
}
