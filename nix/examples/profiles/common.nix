# Settings every node of the example fleet shares. `sendan` (a module argument, from nixosConfigurations) carries
# the node's name, its install plan and the whole ClusterSpec.
{ sendan, ... }:
{
  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
    settings.PermitRootLogin = "prohibit-password";
  };
  # Replace with your operators' keys.
  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq4w0aWmJ0Zr2kkkWHjV4bBz7b9ItXoM5qfSy1G7x3q ops@acme.internal"
  ];

  networking.firewall.enable = true;
  time.timeZone = "UTC";
  nix.settings.experimental-features = [ "nix-command" "flakes" ];

  environment.etc."sendan/node".text = sendan.node;

  system.stateVersion = "25.05";
}
