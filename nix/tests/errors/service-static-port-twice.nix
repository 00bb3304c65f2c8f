# Two named ports on one static number: the second instance of either could not bind.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': ports 'admin' and 'http' both use static port 9000";
  parity = true;
  declaration = lib.recursiveUpdate base {
    services.web.ports = {
      admin.static = 9000;
      http.static = 9000;
    };
  };
}
