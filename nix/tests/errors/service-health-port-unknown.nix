# The health check names a port the service does not declare.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': the health check's port 'admin' is not one of its ports";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.health.http.port = "admin"; };
}
