"""The app itself: starting and stopping it, one Kith per profile, the demo and screenshots."""
