# A service with neither a package nor a command.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'batch' needs a package or a command";
  parity = true;
  declaration = lib.recursiveUpdate base { services.batch.pools = [ "workers" ]; };
}
