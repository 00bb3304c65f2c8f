# A service selects a pool without members.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web' selects pool 'gpus' which is empty";
  parity = true;
  declaration = lib.recursiveUpdate base {
    pools.gpus.class = "worker";
    services.web.pools = [ "gpus" ];
  };
}
